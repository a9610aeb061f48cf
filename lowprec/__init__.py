"""lowprec: bit-exact low-precision arithmetic for deep learning.

The flat public API: formats (``FloatFormat``, ``FixedFormat``, block-scaled ``BlockFormat``/``bfp``
and the named MX/NVFP4 ones, codebooks ``LUTFormat``/``LogFormat``/``kmeans_codebook``,
``formats.get``/``formats.names``),
``quantize``, ``encode``/``decode``, the rounding modes, the MAC-unit simulator (``MAC``) and the
thread count of the C core.
"""

from . import quantize as _old_quantize_module  # noqa: F401 (loaded first: lowprec.quantize is then the function)
from . import array, cost, formats, kernels, observers  # noqa: F401
from .array import decode, encode, quantize
from .formats import (BinaryFormat, BlockFormat, FixedFormat, FloatFormat, IntAffineFormat, LogFormat, LUTFormat,
                      TernaryFormat, bfp, fit_binary, fit_ttq, fit_twn, kmeans_codebook)
from .kernels.rounding import ROUNDING_MODES
from .kernels.threads import get_num_threads, set_num_threads
from .mac import MAC, binary_matmul, log_matmul, lut_matmul, ternary_matmul
from .mac import named_units as mac_units  # named matrix units (tensor cores): get, unit, names

__version__ = "0.1.0"

__all__ = [
    "FloatFormat", "FixedFormat", "BlockFormat", "bfp", "LUTFormat", "LogFormat", "kmeans_codebook",
    "BinaryFormat", "TernaryFormat", "IntAffineFormat", "fit_binary", "fit_twn", "fit_ttq", "formats", "observers", "cost", "quantize", "encode", "decode", "ROUNDING_MODES", "MAC",
    "binary_matmul", "ternary_matmul", "lut_matmul", "log_matmul", "mac_units",
    "set_num_threads", "get_num_threads",
]
