"""Throughput of the issue-4 formats on 2**24 float32 values, single-threaded, against baselines measured
in the same run: the numpy copy (memory bandwidth) and lowprec's fp8_e4m3fn quantizer (the core).

Prints G elements/s, the ratio to the copy and to fp8, for MX (every named one, nearest_even and
stochastic), NVFP4 (numpy path), BFP, a 16-entry and a 256-entry codebook, a 4-bit log format, int8
affine, binary and ternary (numpy paths).
Usage: python bench/formats.py [--n LOG2] [--repeat R]
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from quantize import best_times  # noqa: E402

import lowprec  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24, help="log2 of the element count")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    n = 1 << args.n
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    out = np.empty_like(x)
    lowprec.set_num_threads(1)

    def q(fmt, mode="nearest_even"):
        return lambda: lowprec.quantize(x, fmt, mode, seed=1, out=out)

    cases = {"numpy copy": lambda: np.copyto(out, x), "fp8_e4m3fn (core)": q("fp8_e4m3fn")}
    for name in lowprec.formats.names("block"):
        cases[f"{name}"] = q(name)
        cases[f"{name} stochastic"] = q(name, "stochastic")
    cases["bfp(12, 16)"] = q(lowprec.bfp(12, 16))
    lut16 = lowprec.LUTFormat(np.sort(rng.standard_normal(16)))
    cases["lut 16 entries"] = q(lut16)
    cases["lut 16 entries, encode"] = lambda: lowprec.encode(x, lut16)
    cases["lut 16 entries stochastic"] = q(lut16, "stochastic")
    lut256 = lowprec.LUTFormat(np.sort(rng.standard_normal(256)))
    cases["lut 256 entries"] = q(lut256)
    cases["lut 256 entries stochastic"] = q(lut256, "stochastic")
    cases["log 4-bit (k=1)"] = q(lowprec.LogFormat(4))
    cases["int8 affine (scale 0.05, zero point 3)"] = q(lowprec.IntAffineFormat(8, 0.05, 3))
    cases["int8 affine stochastic"] = q(lowprec.IntAffineFormat(8, 0.05, 3), "stochastic")
    cases["binary (BWN alpha)"] = q(lowprec.fit_binary(x[:4096]))
    cases["ternary (TWN)"] = q(lowprec.fit_twn(x[:4096]))
    best = best_times(cases, args.repeat)
    rates = {k: n / t for k, t in best.items()}
    copy, fp8 = rates["numpy copy"], rates["fp8_e4m3fn (core)"]
    print(f"{n} float32 values, 1 thread; G elements/s, ratio to numpy copy, ratio to fp8_e4m3fn")
    for label, r in rates.items():
        print(f"  {label:<48}{r / 1e9:8.3f}{r / copy:8.3f}x copy{r / fp8:8.3f}x fp8")


if __name__ == "__main__":
    main()
