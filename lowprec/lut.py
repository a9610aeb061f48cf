"""Moved to lowprec.array.codebook (this name stays an alias for a release)."""
import sys

from .array import codebook as _moved

sys.modules[__name__] = _moved
