"""A roofline time model beside the energy model: a layer's latency on a device is the larger of its
compute time (2 x MACs over the device's dense peak for the arithmetic its formats run in) and its
memory time (the bytes it moves over the device's bandwidth); a model's latency is the sum over its
layers (one after another, nothing overlapped: a bound a real schedule only improves on). Throughput
is 1 / latency inferences per second; inferences/s/W divides it by the device's power (its TDP: an
upper bound on the power drawn, so the efficiency is a lower bound).

The arithmetic a layer runs in: the cheapest of the device's that holds both operands (``ARITHMETIC``:
int4, int8, fp8 (e <= 5, m <= 3), fp16, bf16, tf32, fp32; a float (e, m) fits one with at least its
exponent and mantissa bits, an int of b bits an int of b or more); a float x int product (weight-only
quantization) runs in the float's; block-scaled formats in their element's; codebook and logarithmic
formats decoded to fp16; binary and ternary as int8. A format the device lacks runs in the next one
that holds it (fp4 on an H100: fp8).

The shipped table (``devices.csv``: device, quantity = peak | bandwidth | power, format, value, unit =
TFLOPS | GB/s | W, source) cites each number's datasheet; ``load_devices(path)`` reads a user's table in
the same layout (TOPS of integer arithmetic are written in the TFLOPS column: 2 ops per MAC).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..formats import as_format

QUANTITIES = {"peak": "TFLOPS", "bandwidth": "GB/s", "power": "W"}
#: the arithmetic a device may have, cheapest first: (name, family, exponent bits, mantissa bits or int bits)
ARITHMETIC = (("int4", "int", 0, 4), ("int8", "int", 0, 8), ("fp8", "float", 5, 3), ("fp16", "float", 5, 10),
              ("bf16", "float", 8, 7), ("tf32", "float", 8, 10), ("fp32", "float", 8, 23))
COLUMNS = ("device", "quantity", "format", "value", "unit", "source")


@dataclass
class Device:
    """A device's dense peak rates (FLOP/s by arithmetic), memory bandwidth (bytes/s), power (W, or
    None where the table gives none)."""
    name: str
    peak: dict = field(default_factory=dict)
    bandwidth: float | None = None
    power: float | None = None
    sources: list = field(default_factory=list)


def _parse(text: str, name: str) -> dict[str, Device]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"device table {name}: missing column(s) {', '.join(missing)} (need {', '.join(COLUMNS)})")
    devices: dict[str, Device] = {}
    for line, raw in enumerate(reader, start=2):
        where = f"device table {name}, line {line}"
        row = {k: (raw.get(k) or "").strip() for k in COLUMNS}
        for key in ("device", "quantity", "value", "unit", "source"):
            if not row[key]:
                raise ValueError(f"{where}: field {key!r} is empty (every row gives device, quantity, value, unit "
                                 "and its source)")
        q = row["quantity"]
        if q not in QUANTITIES:
            raise ValueError(f"{where}: field 'quantity' must be one of {', '.join(QUANTITIES)}, got {q!r}")
        if row["unit"] != QUANTITIES[q]:
            raise ValueError(f"{where}: field 'unit' of a {q} row must be {QUANTITIES[q]!r}, got {row['unit']!r}")
        try:
            value = float(row["value"])
        except ValueError:
            raise ValueError(f"{where}: field 'value' must be a number, got {row['value']!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{where}: field 'value' must be finite and > 0, got {value}")
        dev = devices.setdefault(row["device"], Device(row["device"]))
        dev.sources.append(row["source"])
        if q == "peak":
            names = [a[0] for a in ARITHMETIC]
            if row["format"] not in names:
                raise ValueError(f"{where}: field 'format' of a peak row must be one of {', '.join(names)}, "
                                 f"got {row['format']!r}")
            dev.peak[row["format"]] = value * 1e12
        elif q == "bandwidth":
            dev.bandwidth = value * 1e9
        else:
            dev.power = value
    for dev in devices.values():
        if not dev.peak or dev.bandwidth is None:
            lack = "a peak row" if not dev.peak else "a bandwidth row"
            raise ValueError(f"device table {name}: device {dev.name!r} needs {lack}")
    return devices


@lru_cache(maxsize=1)
def default_devices() -> dict[str, Device]:
    text = resources.files("lowprec.cost").joinpath("devices.csv").read_text(encoding="utf-8")
    return _parse(text, "devices.csv")


def load_devices(path: str | Path) -> dict[str, Device]:
    """A device table from a CSV file in the shipped layout (see the module doc)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"device table file {p} does not exist")
    return _parse(p.read_text(encoding="utf-8"), p.name)


def device(name: str | Device, devices: dict[str, Device] | None = None) -> Device:
    """A device by name from a table (the shipped one by default)."""
    if isinstance(name, Device):
        return name
    table = devices or default_devices()
    if name not in table:
        raise ValueError(f"unknown device {name!r}; devices: {', '.join(sorted(table))}")
    return table[name]


def _need(fmt: Any) -> tuple:
    """(family, exponent bits, mantissa or int bits) an operand's values need."""
    fmt = as_format(fmt) if isinstance(fmt, str) else fmt
    element = getattr(fmt, "element", None)
    if element is not None:  # block-scaled: the element's arithmetic (its scales are per block)
        fmt = element
    family = fmt.arithmetic
    if family[0] == "int":
        return ("int", 0, family[1])
    if family[0] == "float":
        return ("float", family[1], family[2])
    if family[0] in ("binary", "ternary"):
        return ("int", 0, 8)
    return ("float", 5, 10)  # codebooks and logarithmic formats: decoded to fp16


def arithmetic(a: Any, b: Any, dev: Device) -> str:
    """The device arithmetic a product of formats a and b runs in (see the module doc)."""
    na, nb = _need(a), _need(b)
    if na[0] != nb[0]:  # float x int: the float's
        need = na if na[0] == "float" else nb
    elif na[0] == "int":
        need = ("int", 0, max(na[2], nb[2]))
    else:
        need = ("float", max(na[1], nb[1]), max(na[2], nb[2]))
    for name, family, e, m in ARITHMETIC:
        if name not in dev.peak:
            continue
        if family == need[0] and e >= need[1] and m >= need[2]:
            return name
        if family == "float" and need[0] == "int" and m + 1 >= need[2]:  # an int held exactly by a float
            return name
    raise ValueError(f"device {dev.name}: no arithmetic holds a {a} x {b} product; it has {', '.join(dev.peak)}")


def layer_time(macs: float, bytes_moved: float, arith: str, dev: Device) -> tuple[float, str]:
    """(seconds, 'compute' or 'memory'): the roofline of one layer."""
    compute = 2.0 * macs / dev.peak[arith]
    memory = bytes_moved / dev.bandwidth
    return (compute, "compute") if compute >= memory else (memory, "memory")
