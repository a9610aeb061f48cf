"""Moved to lowprec.kernels.philox (this name stays an alias for a release)."""
import sys

from .kernels import philox as _moved

sys.modules[__name__] = _moved
