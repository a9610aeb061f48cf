"""Cost tables: rows of measured energy (pJ) and area (um^2) per operation, each citing its source.

A table is a CSV file with the columns of ``COLUMNS``: metric ("energy" or "area"), value, unit (pJ
for energy, um2 for area; a register row's energy is in x_mac16, multiples of a 16-bit integer MAC),
op, kind ("int", "float", "sram", "dram", "register"), bits, format (float rows: the format's name),
size_bytes (sram rows), case ("min"/"max" for a range), source. ``load_table(path)`` reads a user's
table (another technology node, say) in the same layout; ``default_table()`` is the shipped 45 nm one.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["CostTable", "load_table", "default_table", "COLUMNS"]

COLUMNS = ("metric", "value", "unit", "op", "kind", "bits", "format", "size_bytes", "case", "source")
UNITS = {"energy": ("pJ", "x_mac16"), "area": ("um2",)}
KINDS = ("int", "float", "sram", "dram", "register")


@dataclass(frozen=True)
class Row:
    metric: str
    value: float
    unit: str
    op: str
    kind: str
    bits: int
    format: str
    size_bytes: int | None
    case: str
    source: str


class CostTable:
    """Validated rows, with lookups by (metric, op, kind)."""

    def __init__(self, rows: list[Row], name: str) -> None:
        self.rows = rows
        self.name = name

    def select(self, metric: str, op: str, kind: str) -> list[Row]:
        return [r for r in self.rows if r.metric == metric and r.op == op and r.kind == kind]

    def __repr__(self) -> str:
        return f"<CostTable {self.name}: {len(self.rows)} rows>"


def _number(where: str, name: str, text: str, cast):
    try:
        return cast(text)
    except ValueError:
        raise ValueError(f"{where}: {name} must be {'an integer' if cast is int else 'a number'}, got {text!r}") from None


def _parse(text: str, name: str) -> CostTable:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"cost table {name}: missing column(s) {', '.join(missing)} (need {', '.join(COLUMNS)})")
    rows = []
    for line, raw in enumerate(reader, start=2):
        where = f"cost table {name}, line {line}"

        def field(key: str) -> str:
            return (raw.get(key) or "").strip()

        metric = field("metric")
        if metric not in UNITS:
            raise ValueError(f"{where}: metric must be one of {', '.join(UNITS)}, got {metric!r}")
        value = _number(where, "value", field("value"), float)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{where}: value must be finite and > 0, got {value}")
        unit = field("unit")
        if unit not in UNITS[metric]:
            raise ValueError(f"{where}: unit {unit!r} does not fit metric {metric!r} (use {' or '.join(UNITS[metric])})")
        kind = field("kind")
        if kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        bits = _number(where, "bits", field("bits"), int)
        if bits <= 0:
            raise ValueError(f"{where}: bits must be > 0, got {bits}")
        size = field("size_bytes")
        if kind == "sram" and not size:
            raise ValueError(f"{where}: an sram row needs size_bytes")
        if kind == "float" and not field("format"):
            raise ValueError(f"{where}: a float row needs format (the format's name, e.g. fp16)")
        if not field("source"):
            raise ValueError(f"{where}: every row cites a source; this one has none")
        if not field("op"):
            raise ValueError(f"{where}: op is empty")
        rows.append(Row(metric, value, unit, field("op"), kind, bits, field("format"),
                        int(size) if size else None, field("case"), field("source")))
    return CostTable(rows, name)


def load_table(path: str | Path) -> CostTable:
    """A cost table from a CSV file in the shipped layout (see the module doc)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"cost table file {p} does not exist")
    return _parse(p.read_text(encoding="utf-8"), p.name)


@lru_cache(maxsize=1)
def default_table() -> CostTable:
    """The shipped 45 nm table: Horowitz (ISSCC 2014) energies, Hennessy & Patterson areas."""
    text = resources.files("lowprec.cost").joinpath("horowitz45.csv").read_text(encoding="utf-8")
    return _parse(text, "horowitz45.csv")
