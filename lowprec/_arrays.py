"""Moved to lowprec.array.adapters (this name stays an alias for a release)."""
import sys

from .array import adapters as _moved

sys.modules[__name__] = _moved
