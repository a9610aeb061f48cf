"""Price what a MAC unit executed: ``report(mac.counts, ...)`` -> CostReport (lines, totals, CSV/JSON).

The counts are those lowprec.MAC (and the binary, ternary, LUT and log units) record: multiplies and
adds by format name, zero products, bits read and written. Multiplies recorded as "exact" (mul=None:
products not rounded) are priced as multipliers of the operand formats given by ``operands``; lookup
and log products by their labels ("lut<a>x<b>": one read of a (2**a * 2**b)-entry product table;
"log<a>x<b>": one add of the exponents). Roundings are part of the adder and multiplier costs, not
priced apart. With ``skip_zeros`` the unit executes neither the multiply nor the add of a product
with a zero operand (a sparse or ternary unit). Data movement: bits read and written, from an SRAM of
``sram_bytes`` or from DRAM.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..formats import BinaryFormat, FixedFormat, TernaryFormat, as_format
from .model import energy, memory_energy, priced_as
from .table import CostTable, default_table

__all__ = ["report", "CostReport"]

_LUT = re.compile(r"^lut(\d+)x(\d+)$")
_LOG = re.compile(r"^log(\d+)x(\d+)$")


@dataclass
class CostReport:
    """Lines (item, count, pJ each, pJ total) and the compute / memory / total energy in pJ."""

    lines: list[tuple[str, float, float, float]] = field(default_factory=list)
    compute_pj: float = 0.0
    memory_pj: float = 0.0
    table: str = ""

    @property
    def total_pj(self) -> float:
        return self.compute_pj + self.memory_pj

    def add(self, item: str, count: float, each: float, memory: bool = False) -> None:
        self.lines.append((item, count, each, count * each))
        if memory:
            self.memory_pj += count * each
        else:
            self.compute_pj += count * each

    def __str__(self) -> str:
        rows = [("item", "count", "pJ each", "pJ total")]
        rows += [(i, f"{c:,.0f}", f"{e:.4g}", f"{t:,.1f}") for i, c, e, t in self.lines]
        rows += [("compute", "", "", f"{self.compute_pj:,.1f}"), ("memory", "", "", f"{self.memory_pj:,.1f}"),
                 ("total", "", "", f"{self.total_pj:,.1f}")]
        widths = [max(len(r[k]) for r in rows) for k in range(4)]
        return "\n".join("  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths)))
                         for r in rows) + f"\n(table: {self.table})"

    def to_dict(self) -> dict:
        return {"table": self.table, "compute_pj": self.compute_pj, "memory_pj": self.memory_pj,
                "total_pj": self.total_pj,
                "lines": [dict(item=i, count=c, pj_each=e, pj_total=t) for i, c, e, t in self.lines]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["item", "count", "pj_each", "pj_total"])
        w.writerows(self.lines)
        return buf.getvalue()


def _mul_energy(name: str, operands: Any, table: CostTable, lut_bits: int, mul_as: dict) -> float:
    if name in mul_as:  # a user multiplier, priced as the operation it is built from
        return priced_as(mul_as[name], table=table)
    if name.startswith("user:"):
        raise ValueError(f"products of a user multiplier ({name}) have no row in the cost table: pass "
                         f"mul_as={{{name!r}: (op, format)}}, e.g. ('add', 'int8') for Mitchell's on 8-bit operands")
    m = _LUT.match(name)
    if m:
        a, b = (int(g) for g in m.groups())
        size = 2**a * 2**b * lut_bits / 8
        return memory_energy(lut_bits, "sram", size_bytes=size, table=table)
    m = _LOG.match(name)
    if m:
        return energy("add", FixedFormat(max(int(g) for g in m.groups()) - 1, 0), table=table)
    if name in ("binary", "ternary"):  # an XNOR slice; a sign select and zero gate
        return energy("mul", BinaryFormat(1.0) if name == "binary" else TernaryFormat(1.0, 1.0, 0.5), table=table)
    if name == "exact":
        if operands is None:
            raise ValueError("the counts hold exact products (mul=None): pass operands=(format_a, format_b) "
                             "to price their multiplier")
        a, b = operands if isinstance(operands, (tuple, list)) else (operands, operands)
        return energy("mul", a, b, table=table)
    return energy("mul", as_format(name), table=table)


def report(counts: dict, *, operands: Any = None, table: CostTable | None = None, skip_zeros: bool = False,
           memory: str = "sram", sram_bytes: float = 32768, lut_bits: int = 16,
           mul_as: dict | None = None) -> CostReport:
    """The energy of a MAC's counts (see the module doc); raises ValueError for anything it cannot
    price rather than counting it as free. mul_as: {label: (op, format)} prices a user multiplier's
    products ("user:<function name>") as that operation."""
    table = table or default_table()
    if operands is None and counts.get("operands"):  # the MAC's inputs= (a swapped layer's formats)
        operands = tuple(as_format(name) for name in counts["operands"])
    for key in ("mul", "add", "zero_products", "bits_read", "bits_written"):
        if key not in counts:
            raise ValueError(f"counts has no {key!r}: pass a lowprec.MAC's .counts")
    out = CostReport(table=table.name)
    skipped = counts["zero_products"] if skip_zeros else 0
    # the skipped products' multiplies and per-step adds: the largest entries (chunk sums are fewer)
    top_mul = max(counts["mul"], key=counts["mul"].get, default=None)
    top_add = max(counts["add"], key=counts["add"].get, default=None)
    for name, n in sorted(counts["mul"].items()):
        if n:
            out.add(f"mul {name}", n - (skipped if name == top_mul else 0), _mul_energy(name, operands, table, lut_bits, mul_as or {}))
    for name, n in sorted(counts["add"].items()):
        if n:
            out.add(f"add {name}", n - (skipped if name == top_add else 0), energy("add", as_format(name), table=table))
    bits = counts["bits_read"] + counts["bits_written"]
    if bits:
        per_bit = memory_energy(1, memory, size_bytes=sram_bytes, table=table)
        where = f"{memory} {sram_bytes:g} B" if memory == "sram" else memory
        out.add(f"bits moved ({where})", bits, per_bit, memory=True)
    return out
