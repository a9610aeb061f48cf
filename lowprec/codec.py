"""Moved to lowprec.array.api (this name stays an alias for a release)."""
import sys

from .array import api as _moved

sys.modules[__name__] = _moved
