"""Moved to lowprec.formats.block (this name stays an alias for a release)."""
import sys

from .formats import block as _moved

sys.modules[__name__] = _moved
