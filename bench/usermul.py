"""User multipliers in the MAC (lowprec.mac.usermul, numba): a 256x1024 @ 1024x256 matmul through an
8x8-bit product table (int32 accumulator) and through a numba-compiled scalar multiplier (Mitchell's,
fp8 operands, fp32 accumulator), in MAC/s, against lowprec's lut_matmul with a 256-entry codebook
table and the same scalar function run in plain Python (numba's JIT off, on a smaller matmul); the
scalar's products into an fp16 accumulator in chunks (summed by the C engine); first-call times of a
fresh process, compiling and loading from lowprec's kernel cache, apart. The threads lowprec and numba use: --threads (default 2).
Usage: python bench/usermul.py [--threads N]
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from mac import best  # noqa: E402  (best of n after a warm-up call)


_FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np
import lowprec
from lowprec.mac import approx
mac = lowprec.MAC(mul=approx._mitchell_fp, inputs="fp8_e4m3fn", acc="fp32")
mac.matmul(np.ones((2, 8), np.float32), np.ones((8, 2), np.float32))
print(time.perf_counter() - t0)
"""


def _first_calls():
    """Seconds of a fresh process's first call through a plain-Python Mitchell function: with an empty
    kernel cache (numba compiles) and again (the kernel loads from disk)."""
    import subprocess

    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "LOWPREC_CACHE_DIR": folder}
        return [float(subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True,
                                     check=True).stdout) for _ in range(2)]


_PLAIN = """
import time
import numpy as np
import lowprec
from lowprec.mac import approx
m, k, n = {shape}
mac = lowprec.MAC(mul=approx._mitchell_fp, inputs="fp8_e4m3fn", acc="fp32")
a = lowprec.quantize(np.random.default_rng(0).standard_normal((m, k)), "fp8_e4m3fn")
t0 = time.perf_counter()
mac.matmul(a, a[:n].T)
print(time.perf_counter() - t0)
"""


def _plain_python(shape):
    """Seconds of the same Mitchell matmul through the same API with numba's JIT off (NUMBA_DISABLE_JIT:
    the kernels and the function run as Python)."""
    import subprocess

    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    return float(subprocess.run([sys.executable, "-c", _PLAIN.format(shape=shape)], env=env, capture_output=True,
                                text=True, check=True).stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import numba

    import lowprec
    from lowprec import MAC
    from lowprec.mac import approx
    from lowprec.mac.coded import lut_matmul

    numba.set_num_threads(args.threads)
    lowprec.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    m, k, n = 256, 1024, 256
    macs = m * k * n
    A = rng.integers(-128, 128, (m, k)).astype(np.float32)
    B = rng.integers(-128, 128, (k, n)).astype(np.float32)
    table = MAC(mul=approx.table("drum", 8, k=4), inputs=("int8", "int8"), acc="int32")
    t0 = time.perf_counter()
    table.matmul(A[:2, :8], B[:8, :2])
    first = time.perf_counter() - t0
    t_table = best(lambda: table.matmul(A, B), 3)
    A8 = lowprec.quantize(rng.standard_normal((m, k)).astype(np.float32), "fp8_e4m3fn")
    B8 = lowprec.quantize(rng.standard_normal((k, n)).astype(np.float32), "fp8_e4m3fn")
    fn = MAC(mul=approx.mitchell_fp, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp32")
    t0 = time.perf_counter()
    fn.matmul(A8[:2, :8], B8[:8, :2])
    first_fn = time.perf_counter() - t0
    t_fn = best(lambda: fn.matmul(A8, B8), 3)
    engine = MAC(mul=approx.mitchell_fp, inputs="fp8_e4m3fn", acc="fp16", chunk=64, chunk_acc="fp32")
    engine.matmul(A8[:2, :8], B8[:8, :2])
    t_engine = best(lambda: engine.matmul(A8, B8), 1)
    small = (32, 64, 32)
    t_py = _plain_python(small)
    compile_s, load_s = _first_calls()
    book = lowprec.LUTFormat(np.linspace(-1, 1, 256))
    ca = rng.integers(0, 256, (32, k))
    cb = rng.integers(0, 256, (k, 16))
    t_lut = best(lambda: lut_matmul(ca, cb, book, book), 1)
    rate = lambda t, count: count / t  # noqa: E731
    print(f"user multipliers, {m}x{k} @ {k}x{n}, {args.threads} threads")
    print(f"  8x8-bit table (DRUM k=4), int32 acc: {rate(t_table, macs):.3e} MAC/s   first call {first:.2f} s")
    print(f"  numba scalar (Mitchell fp), fp32 acc: {rate(t_fn, macs):.3e} MAC/s   first call {first_fn:.2f} s")
    print(f"  a fresh process's first call: {compile_s:.2f} s compiling, {load_s:.2f} s from the disk cache "
          "(each with lowprec's import)")
    print(f"  Mitchell fp, fp16 acc, chunks of 64 in fp32 (products summed by the C engine): "
          f"{rate(t_engine, macs):.3e} MAC/s")
    print(f"  the same scalar in plain Python:      {rate(t_py, np.prod(small)):.3e} MAC/s   "
          f"(numba {rate(t_fn, macs) / rate(t_py, np.prod(small)):,.0f}x)")
    print(f"  lowprec lut_matmul, 256-entry books:  {rate(t_lut, 32 * k * 16):.3e} MAC/s   "
          f"(table engine {rate(t_table, macs) / rate(t_lut, 32 * k * 16):,.0f}x)")


if __name__ == "__main__":
    main()
