"""Named formats and the lookup every layer takes formats through.

Named formats are defined once, in the ``*.toml`` files of the top-level ``formats`` folder (shipped
as ``lowprec.format_data``), each citing its source; ``get(name)`` builds them and ``names()`` lists
them. ``q<int>.<frac>`` (signed) and ``uq<int>.<frac>`` (unsigned) fixed-point names are parsed on
request. Format kinds register here once (``register``): the TOML ``kind`` they are built from, and
that ``as_format`` accepts their objects; nothing else keeps a list of kinds.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any

from .._checks import check_choice
from .scalar import FixedFormat, FloatFormat, Format

__all__ = ["get", "names", "source", "as_format", "as_scalar_format", "register", "NAME_KINDS"]

_KINDS: dict[str, type] = {"float": FloatFormat, "fixed": FixedFormat}  # TOML kind -> class
_TYPES: list[type] = [FloatFormat, FixedFormat]  # what as_format accepts as it is


def register(cls: type, kind: str | None = None) -> type:
    """A format kind registers its class once: as_format then accepts its objects, and with `kind`
    the TOML files may define named formats of it."""
    if cls not in _TYPES:
        _TYPES.append(cls)
    if kind is not None:
        _KINDS[kind] = cls
    return cls

_Q_NAME = re.compile(r"^(u?)q(\d+)\.(\d+)$")
_E_NAME = re.compile(r"^e(\d+)m(\d+)$")


def _load_file(text: str, filename: str) -> dict[str, dict]:
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"format file {filename}: not valid TOML ({exc})") from None
    out = {}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise ValueError(f"format file {filename}: [{name}] must be a table")
        if not entry.get("source"):
            raise ValueError(f"format file {filename}: [{name}] has no 'source' (every format cites one)")
        kind = entry.get("kind")
        if kind not in _KINDS:
            raise ValueError(f"format file {filename}: [{name}] kind must be one of {sorted(_KINDS)}, got {kind!r}")
        out[name] = entry
    return out


@lru_cache(maxsize=1)
def _registry() -> dict[str, dict]:
    entries: dict[str, dict] = {}
    folder = resources.files("lowprec.format_data")
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".toml"):
            for name, entry in _load_file(item.read_text(encoding="utf-8"), item.name).items():
                if name in entries:
                    raise ValueError(f"format {name!r} is defined twice (second time in {item.name})")
                entries[name] = entry
    return entries


def _build(name: str, entry: dict) -> Format:
    params = {k: v for k, v in entry.items() if k not in ("kind", "source", "notes")}
    try:
        return _KINDS[entry["kind"]](name=name, **params)
    except TypeError as exc:
        raise ValueError(f"format {name!r}: bad parameters in its definition ({exc})") from None


NAME_KINDS = ("float", "fixed", "block", "scalar")


def names(kind: str | None = None) -> list[str]:
    """Names of the formats defined in the shipped ``formats/*.toml`` files, sorted; ``kind`` keeps
    those of one kind: "float", "fixed", "block" (block-scaled) or "scalar" (float and fixed)."""
    if kind is None:
        return sorted(_registry())
    check_choice("kind", kind, NAME_KINDS)
    wanted = ("float", "fixed") if kind == "scalar" else (kind,)
    return sorted(n for n, entry in _registry().items() if entry["kind"] in wanted)


def source(name: str) -> str:
    """The citation a named format's definition gives."""
    return _registry()[get(name).name]["source"]


@lru_cache(maxsize=None)
def get(name: str) -> Format:
    """The named format (see ``names()``), or a parsed ``q<int>.<frac>`` / ``uq<int>.<frac>`` (fixed
    point) or ``e<exp>m<man>`` (man >= 1: an IEEE-style float, bias 2**(exp-1) - 1, subnormals, Inf and NaN)."""
    if not isinstance(name, str):
        raise TypeError(f"format name must be a str, got {type(name).__name__}")
    entry = _registry().get(name)
    if entry is not None:
        return _build(name, entry)
    match = _Q_NAME.match(name)
    if match:
        unsigned, i, f = match.groups()
        return FixedFormat(int(i), int(f), signed=not unsigned, name=name)
    match = _E_NAME.match(name)
    if match and int(match.group(2)) >= 1:  # IEEE specials need a mantissa bit (e8m0 is MX's scale)
        return FloatFormat(int(match.group(1)), int(match.group(2)), name=name)
    by_lower = {known.lower(): known for known in names()}  # "FP8_E4M3FN" and "BF16" suggest the names
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=4, cutoff=0.5)]
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"unknown format name {name!r}{hint} (known: lowprec.formats.names(), or q<int>.<frac> / uq<int>.<frac>, e<exp>m<man>)"
    )


def as_format(fmt: Any) -> Any:
    """Accept a format object (of a registered kind) or a name; everything in lowprec takes formats
    through this."""
    if isinstance(fmt, tuple(_TYPES)):
        return fmt
    if isinstance(fmt, str):
        return get(fmt)
    if isinstance(fmt, dict) and _FIELD_READER:
        return _FIELD_READER[0](fmt)
    raise TypeError(f"fmt must be a format name (str), a FloatFormat/FixedFormat or a BlockFormat, got {type(fmt).__name__}")



_FIELD_READER: list = []  # lowprec.formats.fields registers from_fields here (it imports this module)


def set_field_reader(reader) -> None:
    """The function as_format gives a dict (a format written as its fields) to."""
    _FIELD_READER[:] = [reader]


def as_scalar_format(fmt: Any, name: str = "fmt") -> Format:
    """as_format, for the places that take one value per element (not a block-scaled format)."""
    f = as_format(fmt)
    if not isinstance(f, (FloatFormat, FixedFormat)):
        kind = type(f).__name__  # codebooks, affine, binary, ...
        kind = "block-scaled" if hasattr(f, "block") else f"{'an' if kind[0] in 'AEIOU' else 'a'} {kind}"
        raise TypeError(f"{name} must be a float or fixed-point format; {f!r} is {kind} "
                        f"(quantize/encode/decode take it)")
    return f
