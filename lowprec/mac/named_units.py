"""lowprec.mac_units: named matrix units (tensor cores), as MACs that run them.

``get("h100_fp8", inputs=("fp8_e4m3fn", "fp8_e5m2"), chunk=128, chunk_acc="fp32")`` is
``MAC(unit="h100_fp8", ...)``; ``unit(name)`` the definition (lowprec.mac.units.MatrixUnit);
``names()`` every name and alias.
"""

from __future__ import annotations

from typing import Any

from .unit import MAC
from .units import MatrixUnit, names, unit

__all__ = ["get", "names", "unit", "MatrixUnit"]


def get(name: str, **settings: Any) -> MAC:
    """A MAC running the named unit (settings: MAC's inputs, chunk, chunk_acc, out)."""
    return MAC(unit=unit(name), **settings)
