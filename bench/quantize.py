"""Quantization throughput on 2**24 float32 values, against baselines measured in the same run.

Prints elements/s and the ratio to a numpy copy (the memory-bandwidth floor) for: numpy's float16
round trip, ml_dtypes' fp8/bf16 round trips, torch's float8/float16 round trips, and lowprec for
fp16, bf16, fp8_e4m3fn, fp8_e5m2 and q8.8 in nearest_even and stochastic, on 1 and 2 threads.
Usage: python bench/quantize.py [--n LOG2] [--repeat R]
"""

import argparse
import os
import time

import numpy as np

import lowprec


def rate(fn, n, repeat):
    fn()
    best = min(_timed(fn) for _ in range(repeat))
    return n / best


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24, help="log2 of the element count")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    n = 1 << args.n
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    out = np.empty_like(x)
    rows = []

    copy = rate(lambda: np.copyto(out, x), n, args.repeat)
    rows.append(("numpy copy", copy))
    rows.append(("numpy astype(float16) round trip", rate(lambda: x.astype(np.float16).astype(np.float32), n, args.repeat)))
    try:
        import ml_dtypes

        for name in ("float8_e4m3fn", "bfloat16"):
            dt = getattr(ml_dtypes, name)
            rows.append((f"ml_dtypes {name} round trip", rate(lambda: x.astype(dt).astype(np.float32), n, args.repeat)))
    except ImportError:
        pass
    torch_rate = None
    try:
        import torch

        torch.set_num_threads(1)
        t = torch.from_numpy(x)
        torch_rate = rate(lambda: t.to(torch.float8_e4m3fn).to(torch.float32), n, args.repeat)
        rows.append(("torch .to(float8_e4m3fn) round trip (1 thread)", torch_rate))
        rows.append(("torch .to(float16) round trip (1 thread)", rate(lambda: t.to(torch.float16).to(torch.float32), n, args.repeat)))
    except ImportError:
        pass

    results = {}
    for threads in (1, 2):
        lowprec.set_num_threads(threads)
        for name in ("fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "q8.8"):
            for mode in ("nearest_even", "stochastic"):
                r = rate(lambda: lowprec.quantize(x, name, mode, seed=1, out=out), n, args.repeat)
                results[(threads, name, mode)] = r
                rows.append((f"lowprec {name} {mode} ({threads} thread{'s' if threads > 1 else ''})", r))

    print(f"{n} float32 values, {os.cpu_count()} CPUs; rates in G elements/s, ratio to the numpy copy")
    width = max(len(r[0]) for r in rows)
    for label, r in rows:
        print(f"{label:<{width}}  {r / 1e9:7.3f}  {r / copy:6.2f}x copy")
    print()
    for name in ("fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "q8.8"):
        ne1, sr1 = results[(1, name, "nearest_even")], results[(1, name, "stochastic")]
        ne2 = results[(2, name, "nearest_even")]
        vs_torch = f", {ne1 / torch_rate:.2f}x torch fp8 cast" if torch_rate else ""
        print(f"{name:<11} nearest_even {ne1 / copy:.2f}x copy{vs_torch}; stochastic/nearest "
              f"{sr1 / ne1:.2f}; 2 threads/1 thread {ne2 / ne1:.2f}")


if __name__ == "__main__":
    main()
