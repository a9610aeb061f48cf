"""Moved to lowprec.formats.scaled (this name stays an alias for a release)."""
import sys

from .formats import scaled as _moved

sys.modules[__name__] = _moved
