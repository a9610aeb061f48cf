"""Thread count of the C kernels: lowprec.set_num_threads(n), else $LOWPREC_NUM_THREADS, else the
CPUs this process may use (read once: asking the kernel every call cost about 2 us of a 10 us
quantize call)."""

import os
from functools import lru_cache

_num_threads: int | None = None


@lru_cache(maxsize=1)
def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _default() -> int:
    env = os.environ.get("LOWPREC_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"LOWPREC_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n >= 1:
            return n
        raise ValueError(f"LOWPREC_NUM_THREADS must be a positive integer, got {env!r}")
    return _cpus()


def set_num_threads(n: int | None) -> None:
    """Use n threads in the C kernels (None: back to the environment's default). Results do not
    depend on it, stochastic rounding included."""
    global _num_threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    _num_threads = n


def get_num_threads() -> int:
    """Threads the C kernels use."""
    return _num_threads if _num_threads is not None else _default()
