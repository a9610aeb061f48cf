"""The MAC-unit simulator (L4): how products and sums combine, and what was executed.

- unit: lowprec.MAC (the contract of DESIGN.md section 4) and its C-core engine
- orders: pairwise and Kahan accumulation
- bitwise: binary (XNOR-popcount) and ternary units
- coded: lookup-table and logarithmic units
- counts: the one Counts type every unit records into
"""

from .bitwise import binary_matmul, pack_binary, pack_ternary, ternary_matmul
from .coded import log_matmul, lut_matmul, product_table
from .counts import SCHEMA, Counts
from .unit import MAC, ORDERS, patches

__all__ = ["MAC", "ORDERS", "Counts", "SCHEMA", "binary_matmul", "ternary_matmul", "pack_binary", "pack_ternary",
           "lut_matmul", "log_matmul", "product_table", "patches"]
