"""Moved to lowprec.mac.orders (this name stays an alias for a release)."""
import sys

from .mac import orders as _moved

sys.modules[__name__] = _moved
