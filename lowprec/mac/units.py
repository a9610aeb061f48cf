"""Named matrix units (tensor cores), defined as data in the shipped ``formats/mac_units/*.toml``
files (one per vendor, each entry citing its source): ``lowprec.mac_units.unit("h100_fp16")`` (the
definition), ``lowprec.mac_units.get("h100_fp16")`` (a MAC running it), ``lowprec.mac_units.names()``.

A unit is a fused multi-term adder (see formats/mac_units/nvidia.toml and the exact oracle
lowprec.mma_reference): per step it adds ``group`` products and the accumulator at once, every term
truncated toward zero to ``kept_bits`` bits below the largest exponent, and rounds the step's sum
into ``acc`` by ``acc_rounding``. K not a multiple of the group pads the last step with zero
products, as the hardware does. This module holds the definitions; ``MAC(unit=...)`` runs them
(lowprec.mac.fused, the C core's csrc/fused_impl.h).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..formats import Format, as_format
from ..kernels.rounding import ROUNDING_MODES

__all__ = ["MatrixUnit", "unit", "names"]

_FIELDS = {"aliases", "operands", "acc", "registers", "group", "kept_bits", "acc_rounding", "ref_exp_min", "source"}
NO_REF_FLOOR = -(1 << 25)  # the engines' "no floor" (below every exponent a term or zero can have)


@dataclass(frozen=True)
class MatrixUnit:
    """A matrix unit's arithmetic: the formats its operands may hold, its accumulator, products per
    step, bits kept below a step's reference exponent, and the rounding of a step's sum;
    ref_exp_min: a floor under the reference exponent (None: none), so that where every term is
    smaller the terms are truncated below 2**(ref_exp_min - kept_bits)."""

    name: str
    operands: tuple[Format, ...]
    acc: Format
    group: int
    kept_bits: int
    acc_rounding: str
    source: str
    registers: Format  # the format c (the initial accumulator) and the result are held in
    ref_exp_min: int | None = None

    @property
    def engine_ref_min(self) -> int:
        """ref_exp_min as the C and Triton engines take it (NO_REF_FLOOR: none)."""
        return NO_REF_FLOOR if self.ref_exp_min is None else self.ref_exp_min

    def check_operands(self, a_format: Format | str, b_format: Format | str) -> tuple[Format, Format]:
        """The two operand formats, or ValueError naming them and the unit's."""
        fa, fb = as_format(a_format), as_format(b_format)
        for given in (fa, fb):
            if given not in self.operands:
                allowed = ", ".join(f.name or repr(f) for f in self.operands)
                raise ValueError(f"unit {self.name} takes operands in {allowed}; got {given.name or given!r}")
        return fa, fb


def _build(name: str, entry: dict, filename: str) -> MatrixUnit:
    unknown = set(entry) - _FIELDS
    if unknown or "source" not in entry:
        raise ValueError(f"{filename}: [{name}] has unknown fields {sorted(unknown)} or no source")
    acc = entry["acc"]
    acc = as_format(f"e{acc['exp_bits']}m{acc['man_bits']}") if isinstance(acc, dict) else as_format(acc)
    if entry["acc_rounding"] not in ROUNDING_MODES:
        raise ValueError(f"{filename}: [{name}] acc_rounding must be one of {', '.join(ROUNDING_MODES)}")
    registers = as_format(entry["registers"]) if "registers" in entry else acc
    floor = entry.get("ref_exp_min")
    # bounded so that the engines' scalings 2**(kept_bits - reference) stay normal doubles
    if floor is not None and not (isinstance(floor, int) and not isinstance(floor, bool) and -512 <= floor <= 512):
        raise ValueError(f"{filename}: [{name}] ref_exp_min must be an integer in -512..512; got {floor!r}")
    return MatrixUnit(name, tuple(as_format(f) for f in entry["operands"]), acc, int(entry["group"]),
                      int(entry["kept_bits"]), entry["acc_rounding"], entry["source"], registers, floor)


@lru_cache(maxsize=1)
def _registry() -> dict[str, MatrixUnit]:
    units: dict[str, MatrixUnit] = {}
    folder = resources.files("lowprec.format_data") / "mac_units"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".toml"):
            continue
        for name, entry in tomllib.loads(item.read_text(encoding="utf-8")).items():
            unit = _build(name, entry, item.name)
            for key in [name, *entry.get("aliases", [])]:
                if key in units:
                    raise ValueError(f"matrix unit {key!r} is defined twice (second time in {item.name})")
                units[key] = unit
    return units


def names() -> list[str]:
    """Every unit name and alias, sorted."""
    return sorted(_registry())


def unit(name: str) -> MatrixUnit:
    """The named unit's definition; ValueError listing the known names otherwise."""
    try:
        return _registry()[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown matrix unit {name!r}; known: {', '.join(names())}") from None
