"""lowprec.cost: energy and area of the operations the simulator executed, priced from cited tables.

``energy(op, a, b=None)`` (pJ) and ``area(op, a, b=None)`` (um^2) per operation, ``memory_energy``
for data movement, ``report(counts, ...)`` for a MAC's record; tables in ``lowprec/cost/*.csv``
(``load_table`` reads a user's own). See lowprec.cost.model for the scaling laws and their sources.
"""

from .model import OPS, area, energy, memory_energy, scale_to_node
from .profile import LayerCost, ModelCost, compare, profile
from .report import CostReport, report
from .table import CostTable, default_table, load_table

__all__ = ["energy", "area", "memory_energy", "scale_to_node", "OPS", "report", "CostReport", "profile", "compare", "ModelCost", "LayerCost", "CostTable", "default_table", "load_table"]
