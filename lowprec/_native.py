"""Moved to lowprec.kernels.native (this name stays an alias for a release)."""
import sys

from .kernels import native as _moved

sys.modules[__name__] = _moved
