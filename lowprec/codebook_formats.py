"""Moved to lowprec.formats.codebook (this name stays an alias for a release)."""
import sys

from .formats import codebook as _moved

sys.modules[__name__] = _moved
