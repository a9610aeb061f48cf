"""Moved to lowprec.array.block (this name stays an alias for a release)."""
import sys

from .array import block as _moved

sys.modules[__name__] = _moved
