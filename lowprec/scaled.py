"""Moved to lowprec.array.scaled (this name stays an alias for a release)."""
import sys

from .array import scaled as _moved

sys.modules[__name__] = _moved
