"""Quantization throughput on 2**24 float32 values, against baselines measured in the same run.

Prints elements/s and the ratio to a numpy copy (the memory-bandwidth floor) for: numpy's float16
round trip, ml_dtypes' fp8/bf16 round trips, torch's float8/float16 round trips, and lowprec for
fp16, bf16, fp8_e4m3fn, fp8_e5m2 and q8.8 in nearest_even and stochastic (32 random bits, and 8: a
byte a draw), on 1 and 2 threads.
Usage: python bench/quantize.py [--n LOG2] [--repeat R]
"""

import argparse
import os
import time

import numpy as np

import lowprec

MODES = ("nearest_even", "stochastic", "stochastic rbits=8")
RBITS = {"stochastic rbits=8": 8}

def best_times(cases: dict, repeat: int) -> dict:
    """Best wall time of each case over `repeat` rounds; the rounds go through every case in turn,
    so drifts in machine speed hit all cases alike."""
    for fn in cases.values():
        fn()  # warm up
    best = {name: float("inf") for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24, help="log2 of the element count")
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    n = 1 << args.n
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    out = np.empty_like(x)

    cases = {"numpy copy": lambda: np.copyto(out, x),
             "numpy astype(float16) round trip": lambda: x.astype(np.float16).astype(np.float32)}
    try:
        import ml_dtypes

        for name in ("float8_e4m3fn", "bfloat16"):
            dt = getattr(ml_dtypes, name)
            cases[f"ml_dtypes {name} round trip"] = lambda dt=dt: x.astype(dt).astype(np.float32)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(1)
        t = torch.from_numpy(x)
        cases["torch .to(float8_e4m3fn) round trip (1 thread)"] = lambda: t.to(torch.float8_e4m3fn).to(torch.float32)
        cases["torch .to(float16) round trip (1 thread)"] = lambda: t.to(torch.float16).to(torch.float32)
    except ImportError:
        pass
    names = ("fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "q8.8")
    for threads in (1, 2):
        for name in names:
            for mode in MODES:
                def run(name=name, mode=mode, threads=threads):
                    lowprec.set_num_threads(threads)
                    lowprec.quantize(x, name, mode.split()[0], seed=1, rbits=RBITS.get(mode), out=out)

                cases[f"lowprec {name} {mode} ({threads} thread{'s' if threads > 1 else ''})"] = run
    best = best_times(cases, args.repeat)
    rates = {label: n / t for label, t in best.items()}
    copy = rates["numpy copy"]
    torch_rate = rates.get("torch .to(float8_e4m3fn) round trip (1 thread)")
    rows = list(rates.items())
    results = {}
    for threads in (1, 2):
        for name in names:
            for mode in MODES:
                results[(threads, name, mode)] = rates[f"lowprec {name} {mode} ({threads} thread{'s' if threads > 1 else ''})"]

    print(f"{n} float32 values, {os.cpu_count()} CPUs; rates in G elements/s, ratio to the numpy copy")
    width = max(len(r[0]) for r in rows)
    for label, r in rows:
        print(f"{label:<{width}}  {r / 1e9:7.3f}  {r / copy:6.2f}x copy")
    print()
    for name in names:
        ne1, sr1 = results[(1, name, "nearest_even")], results[(1, name, "stochastic")]
        sr8 = results[(1, name, "stochastic rbits=8")]
        ne2 = results[(2, name, "nearest_even")]
        vs_torch = f", {ne1 / torch_rate:.2f}x torch fp8 cast" if torch_rate else ""
        print(f"{name:<11} nearest_even {ne1 / copy:.2f}x copy{vs_torch}; stochastic/nearest "
              f"{sr1 / ne1:.2f} (rbits=8: {sr8 / ne1:.2f}); 2 threads/1 thread {ne2 / ne1:.2f}")


if __name__ == "__main__":
    main()
