"""Moved to lowprec.array (this module stays for a release): the function is lowprec.quantize."""
from .array.api import quantize  # noqa: F401
from .array.scalar import quantize_at, quantized_chunks, run_kernel  # noqa: F401
