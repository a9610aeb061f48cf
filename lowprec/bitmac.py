"""Moved to lowprec.mac.bitwise (this name stays an alias for a release)."""
import sys

from .mac import bitwise as _moved

sys.modules[__name__] = _moved
