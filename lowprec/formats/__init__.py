"""Number formats: what values exist (lowprec's bottom layer, L1; it imports no higher layer).

- scalar: FloatFormat, FixedFormat, layout, max_magnitudes
- bits: codes <-> values of their bit layouts
- block: block-scaled formats (OCP MX, NVFP4, bfp)
- codebook: lookup-table and logarithmic formats
- scaled: binary, ternary and integer-affine formats
- fit: fitting them to data (fit_binary, fit_twn, fit_ttq, kmeans_codebook)
- registry: the named formats of the shipped TOML files (get, names, source), as_format

``lowprec.formats.get("fp8_e4m3fn")`` and ``lowprec.formats.names()`` read the definitions.
"""

from .registry import NAME_KINDS, as_format, as_scalar_format, get, names, register, source
from .scalar import FixedFormat, FloatFormat, Format, check_codes, decode_table, decoded, layout, max_magnitudes
from .block import E8M0, SCALE_RULES, BlockFormat, bfp  # registers the "block" kind
from .codebook import LogFormat, LUTFormat
from .scaled import SCALED_KINDS, BinaryFormat, IntAffineFormat, TernaryFormat
from .fit import fit_binary, fit_ttq, fit_twn, kmeans_codebook
from .groupwise import GroupAffineFormat, fit_groupwise
from .fields import from_fields, to_fields  # registers as_format's reader of dicts

__all__ = ["FloatFormat", "FixedFormat", "Format", "BlockFormat", "LUTFormat", "LogFormat", "BinaryFormat",
           "TernaryFormat", "IntAffineFormat", "GroupAffineFormat", "fit_groupwise", "from_fields", "to_fields", "SCALED_KINDS", "E8M0", "SCALE_RULES", "bfp", "get", "names",
           "source", "as_format", "as_scalar_format", "register", "layout", "max_magnitudes", "decode_table",
           "check_codes", "decoded",
           "fit_binary", "fit_twn", "fit_ttq", "kmeans_codebook", "NAME_KINDS"]
