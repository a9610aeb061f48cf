"""User multipliers in the MAC (lowprec.mac.usermul, numba): a 256x1024 @ 1024x256 matmul through an
8x8-bit product table (int32 accumulator) and through a numba-compiled scalar multiplier (Mitchell's,
fp8 operands, fp32 accumulator), in MAC/s, against lowprec's lut_matmul with a 256-entry codebook
table and the same scalar function run in plain Python (allow_python=True, on a smaller matmul);
first-call times (compile or cache load) apart. The threads lowprec and numba use: --threads (default 2).
Usage: python bench/usermul.py [--threads N]
"""

import argparse
import time

import numpy as np


def timed(fn, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


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
    t_table = timed(lambda: table.matmul(A, B))
    A8 = lowprec.quantize(rng.standard_normal((m, k)).astype(np.float32), "fp8_e4m3fn")
    B8 = lowprec.quantize(rng.standard_normal((k, n)).astype(np.float32), "fp8_e4m3fn")
    fn = MAC(mul=approx.mitchell_fp, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp32")
    t0 = time.perf_counter()
    fn.matmul(A8[:2, :8], B8[:8, :2])
    first_fn = time.perf_counter() - t0
    t_fn = timed(lambda: fn.matmul(A8, B8))
    py = MAC(mul=approx._mitchell_fp, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp32", allow_python=True)
    small = (32, 64, 32)
    t_py = timed(lambda: py.user.matmul(A8[:small[0], :small[1]].astype(np.float64), B8[:small[1], :small[2]], "fp32"), 1)
    book = lowprec.LUTFormat(np.linspace(-1, 1, 256))
    ca = rng.integers(0, 256, (64, k))
    cb = rng.integers(0, 256, (k, 16))
    t_lut = timed(lambda: lut_matmul(ca, cb, book, book), 1)
    rate = lambda t, count: count / t  # noqa: E731
    print(f"user multipliers, {m}x{k} @ {k}x{n}, {args.threads} threads")
    print(f"  8x8-bit table (DRUM k=4), int32 acc: {rate(t_table, macs):.3e} MAC/s   first call {first:.2f} s")
    print(f"  numba scalar (Mitchell fp), fp32 acc: {rate(t_fn, macs):.3e} MAC/s   first call {first_fn:.2f} s")
    print(f"  the same scalar in plain Python:      {rate(t_py, np.prod(small)):.3e} MAC/s   "
          f"(numba {rate(t_fn, macs) / rate(t_py, np.prod(small)):,.0f}x)")
    print(f"  lowprec lut_matmul, 256-entry books:  {rate(t_lut, 64 * k * 16):.3e} MAC/s   "
          f"(table engine {rate(t_table, macs) / rate(t_lut, 64 * k * 16):,.0f}x)")


if __name__ == "__main__":
    main()
