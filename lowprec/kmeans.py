"""Moved to lowprec.formats.fit (this name stays an alias for a release)."""
import sys

from .formats import fit as _moved

sys.modules[__name__] = _moved
