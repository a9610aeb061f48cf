"""The C core's Python face (L2): the compiled kernels (native), their parameter blocks (params), the
rounding modes and seeds (rounding), the layout of stochastic draws (philox) and the thread count
(threads). Layers above call the kernels through these; nothing here knows arrays' kinds."""

from .native import ffi, lib
from .params import qparams
from .philox import WORK_UNIT, counter_offset, counters_per_unit, element_random
from .rounding import DIRECTED_MODES, ROUNDING_MODES, SYMMETRIC_MODES, check_rbits, mode_index, seed_key
from .threads import get_num_threads, set_num_threads

__all__ = ["ffi", "lib", "qparams", "WORK_UNIT", "counter_offset", "counters_per_unit", "element_random",
           "ROUNDING_MODES", "SYMMETRIC_MODES", "DIRECTED_MODES", "check_rbits", "mode_index", "seed_key",
           "get_num_threads", "set_num_threads"]
