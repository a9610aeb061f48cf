"""Moved to lowprec.array.device (this name stays an alias for a release)."""
import sys

from .array import device as _moved

sys.modules[__name__] = _moved
