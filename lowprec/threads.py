"""Moved to lowprec.kernels.threads (this name stays an alias for a release)."""
import sys

from .kernels import threads as _moved

sys.modules[__name__] = _moved
