"""Moved to lowprec.kernels.rounding (this name stays an alias for a release)."""
import sys

from .kernels import rounding as _moved

sys.modules[__name__] = _moved
