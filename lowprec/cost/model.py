"""Energy (pJ) and area (um^2) per operation as a function of the formats, anchored on a cost table.

Scaling laws (each reproduces every table point exactly):

- Integer / fixed-point add of b bits: linear in b, piecewise between the table's points, the end
  segments extended beyond them (a ripple or prefix adder grows about linearly; Horowitz 2014).
- Integer multiply a x b bits: k * a * b (an array multiplier has a*b partial-product cells), with k
  = value / bits**2 at the table's points, interpolated linearly in sqrt(a*b) and held constant beyond.
- Floating-point add and multiply of exponent e, significand p = m + 1 bits: a component model built
  from the integer laws, then scaled by a factor interpolated (linearly in p, constant beyond) between
  the table's float points, so that those come out exactly:
  add = mantissa adder (p + 3 bits: guard, round, sticky) + exponent subtractor (e bits) + alignment
  and normalisation shifters (2 * p * ceil(log2 p) mux cells, a cell priced as one bit of the 8-bit
  adder); mul = p x p multiplier + exponent adder (e + 1 bits) + rounding incrementer (p bits) + a
  one-position normalisation (p cells).
- fma = mul + add (of the accumulator's format); mac = the same with the product's operands in `a`
  and the accumulator in `b`.
- Logarithmic multiply = an add of the exponents (bits - 1 bits); a lookup-table "multiply" is one read
  of the product table (``lut_bits``-bit entries) from an SRAM of its size; a binary product is one
  1-bit slice (XNOR), a ternary product two (sign select and zero gate); they cost no area rows of
  their own beyond those slices.
- Multiplies of two families (``MIXED_RULES``): float (e, m) x int b = a (m + 1) x b integer multiplier
  and an e-bit exponent add (the int converted on the fly, as weight-only quantized GEMMs do); log x
  int b = a shift of the int, priced as a b-bit add (a barrel shifter of b bits has the same order of
  cells); log x float (e, m) = an e-bit add to the exponent; LUT x a format of b bits (b <= 16) = one
  read of a product table of entries * 2**b ``lut_bits``-bit entries; binary or ternary x int b = a
  conditional negation, a b-bit add; binary or ternary x float = the sign flip and zero gate of the
  pure case (1 or 2 one-bit slices). The same rule prices `energy`, `area`, `report` and `profile`.
- SRAM read energy per bit: the table's 64-bit access energies by array size, linear in log2(size)
  between points, and ~sqrt(size) below the smallest (the trend of Horowitz's 8 KB -> 32 KB points);
  DRAM: the table's range (mean by default). A register access: the table's multiple of a 16-bit
  integer MAC (Eyeriss' normalisation), per bit of the register.
- Technology scaling (``scale_to_node``): classical constant-field scaling (Dennard et al., IEEE JSSC
  1974): area ~ s**2, energy ~ s**3 for s = node / 45 nm. Stillmaker and Baas (Integration 2017) show
  this errs by up to 83x below 45 nm; pass factors from their tables instead where accuracy matters.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..formats import (FloatFormat, as_format, get)
from .table import CostTable, default_table

__all__ = ["energy", "area", "memory_energy", "OPS", "scale_to_node", "MIXED_RULES"]

OPS = ("add", "mul", "fma", "mac", "register")
METRICS = ("energy", "area")


def _line(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear through sorted points, end segments extended; one point: proportional."""
    if len(points) == 1:
        x0, y0 = points[0]
        return y0 * x / x0
    i = 0
    while i < len(points) - 2 and x > points[i + 1][0]:
        i += 1
    (x0, y0), (x1, y1) = points[i], points[i + 1]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def _clamped(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear through sorted points, constant beyond the ends."""
    if x <= points[0][0]:
        return points[0][1]
    if x >= points[-1][0]:
        return points[-1][1]
    return _line(points, x)


def _rows(table: CostTable, metric: str, op: str, kind: str) -> list:
    rows = table.select(metric, op, kind)
    if not rows:
        raise ValueError(f"cost table {table.name} has no {metric} rows for op={op!r}, kind={kind!r}; it cannot price this")
    return rows


def int_cost(metric: str, op: str, a_bits: int, b_bits: int | None, table: CostTable) -> float:
    if op == "add":
        pts = sorted((r.bits, r.value) for r in _rows(table, metric, "add", "int"))
        return _line(pts, a_bits)
    b_bits = a_bits if b_bits is None else b_bits
    rows = _rows(table, metric, "mul", "int")
    for r in rows:
        if r.bits == a_bits == b_bits:
            return r.value  # a table point, exactly
    pts = sorted((r.bits, r.value / r.bits**2) for r in rows)
    return _clamped(pts, math.sqrt(a_bits * b_bits)) * a_bits * b_bits


def _float_model(metric: str, op: str, e: int, p: int, table: CostTable) -> float:
    cell = int_cost(metric, "add", 8, None, table) / 8
    if op == "add":
        return (int_cost(metric, "add", p + 3, None, table) + int_cost(metric, "add", e, None, table)
                + 2 * p * math.ceil(math.log2(max(p, 2))) * cell)
    return (int_cost(metric, "mul", p, p, table) + int_cost(metric, "add", e + 1, None, table)
            + int_cost(metric, "add", p, None, table) + p * cell)


def float_cost(metric: str, op: str, e: int, m: int, table: CostTable) -> float:
    anchors = []
    for r in _rows(table, metric, op, "float"):
        f = get(r.format)
        if not isinstance(f, FloatFormat):
            raise ValueError(f"cost table {table.name}: float row names {r.format!r}, which is not a float format")
        if (f.exp_bits, f.man_bits) == (e, m):
            return r.value  # a table point, exactly
        anchors.append((f.man_bits + 1, r.value / _float_model(metric, op, f.exp_bits, f.man_bits + 1, table)))
    return _float_model(metric, op, e, m + 1, table) * _clamped(sorted(anchors), m + 1)


def _family(fmt: Any) -> tuple:
    """The arithmetic a format's values need, as each format class declares it (``arithmetic``):
    ("int", bits), ("float", e, m), ("log", bits), ("lut", entries), ("binary",), ("ternary",)."""
    if isinstance(fmt, str):
        fmt = as_format(fmt)
    family = getattr(fmt, "arithmetic", None)
    if family is None:
        raise ValueError(f"cannot price a {type(fmt).__name__} ({fmt!r}): not a format family the cost model knows")
    return family


def _cost(metric: str, op: str, a: Any, b: Any, table: CostTable | None, lut_bits: int) -> float:
    table = table or default_table()
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}; got {op!r}")
    if a is None:
        raise ValueError("a (a format or its name) is required")
    if op in ("fma", "mac"):
        return _cost(metric, "mul", a, None, table, lut_bits) + _cost(metric, "add", b if b is not None else a, None,
                                                                       table, lut_bits)
    fa = _family(a)
    if op == "register":
        if metric == "area":
            raise ValueError(f"cost table {table.name} prices register accesses by energy only; no area rows")
        (row,) = _rows(table, metric, "access", "register")
        mac16 = int_cost(metric, "mul", 16, 16, table) + int_cost(metric, "add", 16, None, table)
        return row.value * mac16 / row.bits * _bits_of(a)
    if op == "add":
        if b is not None:
            raise ValueError("add takes one format (a); b is for mul, fma and mac")
        if fa[0] == "int":
            return int_cost(metric, "add", fa[1], None, table)
        if fa[0] == "float":
            return float_cost(metric, "add", fa[1], fa[2], table)
        raise ValueError(f"cannot price add in {fa[0]} format {a!r}: accumulate it in an integer or float format")
    fb = _family(b) if b is not None else fa
    if fa[0] != fb[0]:
        return _mixed_mul(metric, fa, fb, a, b, table, lut_bits)
    kind = fa[0]
    if kind == "int":
        return int_cost(metric, "mul", fa[1], fb[1], table)
    if kind == "float":
        return float_cost(metric, "mul", max(fa[1], fb[1]), max(fa[2], fb[2]), table)
    if kind == "log":
        return int_cost(metric, "add", max(fa[1], fb[1]) - 1, None, table)
    if kind in ("binary", "ternary"):
        return (1 if kind == "binary" else 2) * int_cost(metric, "add", 1, None, table)
    # lut: one read of the product table
    if metric == "area":
        raise ValueError(f"cost table {table.name} has no SRAM area rows: cannot price a lookup table's area")
    size = fa[1] * fb[1] * lut_bits / 8
    return memory_energy(lut_bits, "sram", size_bytes=size, table=table)


MIXED_RULES = {
    ("float", "int"): "a (m+1) x b integer multiplier and an e-bit exponent add",
    ("int", "log"): "a shift of the int: a b-bit add",
    ("float", "log"): "an add to the exponent: an e-bit add",
    ("lut", "*"): "one read of a product table of entries * 2**b entries (b <= 16)",
    ("binary", "int"): "a conditional negation: a b-bit add",
    ("ternary", "int"): "a conditional negation: a b-bit add",
    ("binary", "float"): "the sign flip: a 1-bit slice",
    ("ternary", "float"): "the sign flip and zero gate: two 1-bit slices",
}


def _operand_bits(family: tuple) -> int:
    """Bits of an operand given by its family (int b, float 1 + e + m, log b)."""
    return family[1] if family[0] in ("int", "log") else 1 + family[1] + family[2]


def _mixed_mul(metric: str, fa: tuple, fb: tuple, a: Any, b: Any, table: CostTable, lut_bits: int) -> float:
    """A multiply of operands of two families (MIXED_RULES)."""
    pair = {fa[0]: fa, fb[0]: fb}
    kinds = set(pair)
    if "lut" in kinds:
        other = fb if fa[0] == "lut" else fa
        if other[0] in ("binary", "ternary"):
            bits = 1 if other[0] == "binary" else 2
        elif other[0] == "lut":
            bits = math.ceil(math.log2(other[1]))
        else:
            bits = _operand_bits(other)
        if bits > 16:
            raise ValueError(f"cannot price a LUT x {other[0]} multiply ({a!r} x {b!r}): a product table indexed "
                             f"by a {bits}-bit operand is too large; quantize that operand to <= 16 bits")
        if metric == "area":
            raise ValueError(f"cost table {table.name} has no SRAM area rows: cannot price a lookup table's area")
        entries = pair["lut"][1] * 2 ** bits
        return memory_energy(lut_bits, "sram", size_bytes=entries * lut_bits / 8, table=table)
    if kinds == {"float", "int"}:
        e, m = pair["float"][1], pair["float"][2]
        return int_cost(metric, "mul", m + 1, pair["int"][1], table) + int_cost(metric, "add", e, None, table)
    if kinds == {"int", "log"}:
        return int_cost(metric, "add", pair["int"][1], None, table)
    if kinds == {"float", "log"}:
        return int_cost(metric, "add", pair["float"][1], None, table)
    sign = kinds & {"binary", "ternary"}
    if sign and len(kinds) == 2:
        kind = sign.pop()
        other = (kinds - {kind}).pop()
        if other == "int":
            return int_cost(metric, "add", pair["int"][1], None, table)
        if other == "float":
            return (1 if kind == "binary" else 2) * int_cost(metric, "add", 1, None, table)
        if other in ("binary", "ternary"):  # binary x ternary: the ternary slices
            return 2 * int_cost(metric, "add", 1, None, table)
        if other == "log":
            return int_cost(metric, "add", pair["log"][1], None, table)
    raise ValueError(f"cannot price a mul of a {fa[0]} and a {fb[0]} format ({a!r} x {b!r}); mixed pairs priced: "
                     + "; ".join(f"{x} x {y}: {rule}" for (x, y), rule in MIXED_RULES.items()))


def _bits_of(fmt: Any) -> float:
    if isinstance(fmt, str):
        fmt = as_format(fmt)
    return float(fmt.bits)


def priced_as(rule: Any, *, table: CostTable | None = None) -> float:
    """The energy (pJ) of a user multiplier's product priced as the operation it is built from:
    rule = (op, format), op "add" or "mul" (Mitchell's multiplier: ("add", an integer of the operands'
    width), one add of their logarithms)."""
    if not (isinstance(rule, (tuple, list)) and len(rule) == 2 and rule[0] in ("add", "mul")):
        raise ValueError(f"mul_as must be (op, format) with op 'add' or 'mul', e.g. ('add', 'int8'); got {rule!r}")
    return energy(rule[0], as_format(rule[1]), table=table)


def energy(op: str, a: Any, b: Any = None, *, table: CostTable | None = None, lut_bits: int = 16) -> float:
    """Energy in pJ of one operation ``op`` (see OPS) on formats a (and b: the second operand of a
    mul, the accumulator of fma/mac), by the module's scaling laws; e.g. energy("mul", "int8") = 0.2."""
    return _cost("energy", op, a, b, table, lut_bits)


def area(op: str, a: Any, b: Any = None, *, table: CostTable | None = None, lut_bits: int = 16) -> float:
    """Area in um^2 of the unit doing ``op`` on formats a (and b); e.g. area("mul", "fp16") = 1640."""
    return _cost("area", op, a, b, table, lut_bits)


def memory_energy(bits: float, memory: str = "sram", *, size_bytes: float = 32768, case: str = "mean",
                  table: CostTable | None = None) -> float:
    """Energy in pJ of moving `bits` bits from an SRAM of size_bytes (reads; writes are priced alike)
    or from DRAM (case "min", "max" or "mean" of the table's range)."""
    table = table or default_table()
    if bits < 0 or not math.isfinite(bits):
        raise ValueError(f"bits must be finite and >= 0, got {bits}")
    if memory == "dram":
        rows = {r.case: r for r in _rows(table, "energy", "read", "dram")}
        if case == "mean":
            per_access = float(np.mean([r.value for r in rows.values()]))
            width = next(iter(rows.values())).bits
        elif case in rows:
            per_access, width = rows[case].value, rows[case].bits
        else:
            raise ValueError(f"case must be 'mean' or one of {sorted(rows)}, got {case!r}")
        return per_access / width * bits
    if memory != "sram":
        raise ValueError(f"memory must be 'sram' or 'dram', got {memory!r}")
    if not size_bytes > 0:
        raise ValueError(f"size_bytes must be > 0, got {size_bytes}")
    rows = sorted(_rows(table, "energy", "read", "sram"), key=lambda r: r.size_bytes)
    per_bit = [(math.log2(r.size_bytes), r.value / r.bits) for r in rows]
    x = math.log2(size_bytes)
    if x < per_bit[0][0]:  # below the smallest array: ~sqrt(size)
        e = per_bit[0][1] * math.sqrt(size_bytes / rows[0].size_bytes)
    else:
        e = _line(per_bit, x)
    return e * bits


def scale_to_node(value: float, metric: str, node_nm: float, from_nm: float = 45.0) -> float:
    """A 45 nm cost at another node by classical constant-field scaling (Dennard et al. 1974): area
    ~ s**2, energy ~ s**3, s = node_nm / from_nm. See the module doc for its limits."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if not node_nm > 0 or not from_nm > 0:
        raise ValueError(f"node sizes must be > 0 nm, got {node_nm} and {from_nm}")
    s = node_nm / from_nm
    return value * (s**2 if metric == "area" else s**3)
