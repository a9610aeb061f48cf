"""MAC-simulator throughput: a 256x1024 @ 1024x256 matmul with fp8_e4m3fn inputs.

Prints, from one run: native float32 np.matmul, a numpy loop that rounds after every k-step (one
vectorized call per k, the way one emulates an accumulator without lowprec), and lowprec.MAC with
fp16 accumulation (sequential, chunk 64, fused and unfused, stochastic), on 1 and 2 threads, in
G emulated MAC/s and as ratios. Usage: python bench/mac.py [--repeat R]

OpenBLAS's idle threads spin for about 2**28 cycles after each BLAS call (the native matmul, and
the integer accumulators' BLAS branch); on a 2-core machine they take a core from the next case's
threads. The bench shortens the spin (OPENBLAS_THREAD_TIMEOUT, unless set) so that every case runs
on the cores it asks for.
"""

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # before numpy loads OpenBLAS

import numba
import numpy as np

import lowprec

M, K, N = 256, 1024, 256


def best(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def numpy_loop(a, b):
    """What one writes without lowprec: round the accumulator to fp16 after every k-step with numpy's
    float16 cast, one vectorized call per k (and double rounding through float32 at that)."""
    s = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for t in range(a.shape[1]):
        s = (s + np.multiply.outer(a[:, t], b[t])).astype(np.float16).astype(np.float32)
    return s


def quantize_loop(a, b):
    """The same loop with lowprec.quantize as the rounding step (bit-exact fp16 of the float32 sum)."""
    s = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for t in range(a.shape[1]):
        s = lowprec.quantize(s + np.multiply.outer(a[:, t], b[t]), "fp16")
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    a = lowprec.quantize(rng.standard_normal((M, K)).astype(np.float32), "fp8_e4m3fn")
    b = lowprec.quantize(rng.standard_normal((K, N)).astype(np.float32), "fp8_e4m3fn")
    macs = M * K * N
    rows = []
    native = macs / best(lambda: np.matmul(a, b), args.repeat)
    rows.append(("np.matmul float32 (native)", native))
    lowprec.set_num_threads(1)
    loop = macs / best(lambda: numpy_loop(a, b), 1)
    rows.append(("numpy loop, astype(float16) per k-step", loop))
    rows.append(("numpy loop, lowprec.quantize per k-step (1 thread)", macs / best(lambda: quantize_loop(a, b), 1)))
    configs = [
        ("fp16 sequential nearest_even", dict(acc="fp16")),
        ("fp16 chunk 64 nearest_even", dict(acc="fp16", chunk=64)),
        ("fp16 chunk 16, fp32 across chunks (the demo's)", dict(acc="fp16", chunk=16, chunk_acc="fp32")),
        ("fp32 accumulator nearest_even", dict(acc="fp32")),
        ("fp16 fused (FMA) nearest_even", dict(acc="fp16", fused=True)),
        ("fp16 unfused (mul fp16) nearest_even", dict(mul="fp16", acc="fp16")),
        ("fp16 sequential stochastic", dict(acc="fp16", rounding="stochastic", seed=1)),
        ("h100_fp16 matrix unit (fp8 values as fp16)", dict(unit="h100_fp16")),
        ("h100_fp8 matrix unit", dict(unit="h100_fp8", inputs="fp8_e4m3fn")),
        ("h100_fp8 unit, promoted to fp32 every 128", dict(unit="h100_fp8", inputs="fp8_e4m3fn", chunk=128,
                                                          chunk_acc="fp32")),
    ]
    # integer accumulators take int8 operands (their usual ones): ai, bi
    ai = rng.integers(-128, 128, (M, K)).astype(np.float32)
    bi = rng.integers(-128, 128, (K, N)).astype(np.float32)
    # float32 operands (24-bit products, which float cannot hold): af, bf
    af = rng.standard_normal((M, K)).astype(np.float32)
    bf = rng.standard_normal((K, N)).astype(np.float32)
    f32_configs = [("float32 operands, fp32 accumulator nearest_even", dict(acc="fp32"))]
    int_configs = [("int8 operands, int32 accumulator", dict(acc="int32")),
                   ("int8 operands, int16 accumulator (saturating, overflows)", dict(acc="int16")),
                   ("int8 operands, q8.8 accumulator (saturating, overflows)", dict(acc="q8.8"))]
    results = {}
    for threads in (1, 2):
        lowprec.set_num_threads(threads)
        numba.set_num_threads(threads)
        for label, kw in configs + f32_configs + int_configs:
            mac = lowprec.MAC(**kw)
            x, y = (ai, bi) if "int8 operands" in label else (af, bf) if "float32 operands" in label else (a, b)
            mac.matmul(x[:4], y)  # compile (numba) outside the timing
            r = macs / best(lambda: mac.matmul(x, y), args.repeat)
            results[(threads, label)] = r
            rows.append((f"lowprec {label} ({threads} thread{'s' if threads > 1 else ''})", r))
    width = max(len(r[0]) for r in rows)
    print(f"{M}x{K} @ {K}x{N} fp8_e4m3fn matmul ({macs / 1e6:.0f} M MACs); G MAC/s, ratio to the numpy loop, "
          "ratio to native np.matmul")
    for label, r in rows:
        print(f"{label:<{width}}  {r / 1e9:8.3f}  {r / loop:7.1f}x loop  {r / native:8.4f}x native")
    seq2 = results[(2, "fp16 sequential nearest_even")]
    print(f"\ntarget: fp16 sequential nearest_even, 2 threads: {seq2 / 1e9:.2f} G MAC/s (>= 10), "
          f"{seq2 / loop:.1f}x the numpy loop (>= 30)")
    unit2 = results[(2, "h100_fp16 matrix unit (fp8 values as fp16)")]
    print(f"target: h100_fp16 matrix unit, 2 threads: {unit2 / 1e9:.2f} G MAC/s (>= 1)")
    f32 = results[(2, "float32 operands, fp32 accumulator nearest_even")]
    print(f"target: float32 operands, fp32 accumulator, 2 threads: {f32 / 1e9:.2f} G MAC/s (>= 2)")
    sr2 = results[(2, "fp16 sequential stochastic")]
    print(f"target: fp16 sequential stochastic, 2 threads: {sr2 / 1e9:.2f} G MAC/s (>= 2)")
    for label in ("int8 operands, int32 accumulator", "int8 operands, int16 accumulator (saturating, overflows)",
                  "int8 operands, q8.8 accumulator (saturating, overflows)"):
        print(f"target: {label}, 2 threads: {results[(2, label)] / 1e9:.2f} G MAC/s (>= 10)")


if __name__ == "__main__":
    main()
