"""Formats written as tables of their fields, as a spec file holds a fitted format (an affine
integer format with its calibrated scales): from_fields reads one, to_fields writes one."""

from __future__ import annotations

from typing import Any

import numpy as np

from .groupwise import GroupAffineFormat
from .registry import _registry, set_field_reader
from .scaled import IntAffineFormat

FIELD_KINDS = ("int_affine", "group_affine")


def from_fields(fields: dict) -> Any:
    """A format written as a table of its fields (a spec file's way to hold a fitted format):
    {"kind": "int_affine", "bits": 8, "scale": 0.02 or [per-channel scales], "zero_point": 0,
    "signed": true, "narrow": false, "axis": 0}."""
    kind = fields.get("kind")
    if kind not in FIELD_KINDS:
        raise ValueError(f"a format given as fields needs kind, one of {', '.join(map(repr, FIELD_KINDS))}; "
                         f"got {kind!r}")
    rest = {k: v for k, v in fields.items() if k != "kind"}
    cls = IntAffineFormat if kind == "int_affine" else GroupAffineFormat
    allowed = ("bits", "scale", "zero_point", "signed", "narrow", "axis", "name") if kind == "int_affine" else (
        "bits", "group", "scale", "zero_point", "signed", "axis", "group_axis", "name")
    unknown = set(rest) - set(allowed)
    if unknown:
        raise ValueError(f"{kind} fields: unknown {sorted(unknown)}; allowed: {', '.join(allowed)}")
    for key in ("scale", "zero_point"):
        if isinstance(rest.get(key), list):
            rest[key] = np.asarray(rest[key])
    try:
        return cls(**rest)
    except TypeError as exc:
        raise ValueError(f"{kind} fields: {exc}") from None


def to_fields(fmt: Any) -> Any:
    """A format as a spec file can hold it: its name where it is registered under one, else its
    fields (from_fields reads them back)."""
    name = getattr(fmt, "name", None)
    if isinstance(fmt, str) or (name and name in _registry()):
        return fmt if isinstance(fmt, str) else name
    if isinstance(fmt, IntAffineFormat):
        listed = lambda v: [float(x) for x in v] if hasattr(v, "__len__") else float(v)  # noqa: E731
        zp = fmt.zero_point
        return {"kind": "int_affine", "bits": fmt.bits, "scale": listed(fmt.scale),
                "zero_point": [int(z) for z in zp] if hasattr(zp, "__len__") else int(zp), "signed": fmt.signed,
                "narrow": fmt.narrow, "axis": fmt.axis}
    if isinstance(fmt, GroupAffineFormat):
        return {"kind": "group_affine", "bits": fmt.bits, "group": fmt.group, "scale": fmt.scale.tolist(),
                "zero_point": fmt.zero_point.astype(int).tolist(), "signed": fmt.signed, "axis": fmt.axis,
                "group_axis": fmt.group_axis}
    raise ValueError(f"{fmt!r} has no name and no field form: a spec file cannot hold it")


set_field_reader(from_fields)
