"""Moved to lowprec.mac.coded (this name stays an alias for a release)."""
import sys

from .mac import coded as _moved

sys.modules[__name__] = _moved
