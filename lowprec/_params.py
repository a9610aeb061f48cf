"""Moved to lowprec.kernels.params (this name stays an alias for a release)."""
import sys

from .kernels import params as _moved

sys.modules[__name__] = _moved
