"""lowprec.cost: energy and area of the operations the simulator executed, priced from cited tables.

``energy(op, a, b=None)`` (pJ) and ``area(op, a, b=None)`` (um^2) per operation, ``memory_energy``
for data movement, ``report(counts, ...)`` for a MAC's record; tables in ``lowprec/cost/*.csv``
(``load_table`` reads a user's own). See lowprec.cost.model for the scaling laws and their sources.
"""

from .model import OPS, area, energy, memory_energy, scale_to_node
from .profiling import LayerCost, ModelCost, calibrated, compare, profile
from .report import CostReport, report
from .storage import (SPARSE_SCHEMES, compression_rate, deep_compression_rate, huffman_bits, model_storage,
                      space_saving_rate, sparse_bits, speedup_rate, tensor_bits)
from .table import CostTable, default_table, load_table
from .timing import Device, default_devices, load_devices

__all__ = ["SPARSE_SCHEMES", "sparse_bits", "Device", "default_devices", "load_devices", "energy", "area", "memory_energy", "scale_to_node", "OPS", "report", "CostReport", "profile", "compare", "calibrated", "ModelCost", "LayerCost", "tensor_bits",
           "model_storage", "compression_rate", "space_saving_rate", "speedup_rate", "deep_compression_rate", "huffman_bits", "CostTable", "default_table", "load_table"]
