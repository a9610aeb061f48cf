"""What a MAC unit executed: one Counts type, one schema, for every unit (MAC, binary and ternary
XNOR/popcount units, LUT and log units); lowprec.cost.report prices it.

- mul, add, round: operations by label: a format name ("fp16", "q12.0"), "exact" (products not
  rounded), "binary" / "ternary" (an XNOR slice / sign-select and zero gate), "lut<a>x<b>" (a
  product-table read), "log<a>x<b>" (an exponent add)
- zero_products: products with a zero operand (a sparse or ternary unit may skip them)
- overflows: integer and fixed-point accumulator overflow events
- elements_read / elements_written, bits_read / bits_written: operand and result traffic
- calls: operations (matmuls, sums) recorded
- operands: the formats the operands are stored in, (a's, b's), where known: the multiplier's price
  for "exact" products

Adding a counter is one line in SCHEMA.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["Counts", "SCHEMA"]

#: counter -> the type of its empty value
SCHEMA: dict[str, type] = {
    "mul": Counter, "add": Counter, "round": Counter, "zero_products": int, "overflows": int,
    "elements_read": int, "elements_written": int, "bits_read": int, "bits_written": int, "calls": int,
}


class Counts(dict):
    """A MAC unit's record (see the module doc); a dict, so ``counts["mul"]["fp16"]`` reads it."""

    def __init__(self, operands: tuple | None = None):
        super().__init__({key: kind() for key, kind in SCHEMA.items()})
        self["operands"] = operands

    def record(self, **amounts: Any) -> "Counts":
        """Add to counters: numbers to the int ones, {label: n} to the by-label ones. Unknown
        counters raise (a typo must not start a new schema)."""
        for key, value in amounts.items():
            if key not in SCHEMA:
                raise KeyError(f"{key!r} is not a counter; the counters are {', '.join(SCHEMA)}")
            if SCHEMA[key] is Counter:
                self[key].update(value)
            else:
                self[key] += int(value)
        return self
