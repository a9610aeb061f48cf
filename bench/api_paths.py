"""Throughput of the array API's other common paths on 2**22 float32 values, 1 thread, as ratios to
the numpy copy measured in the same run: half-precision inputs (numpy float16, torch bfloat16), a
transposed view, block formats along the first axis, per-channel scaled formats on the first and last
axes, and encode/decode (the headline quantizers: bench/quantize.py and bench/formats.py).
Usage: python bench/api_paths.py [--repeat R]
"""

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from quantize import best_times  # noqa: E402

import lowprec  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    lowprec.set_num_threads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1 << 22).astype(np.float32)
    square = x.reshape(2048, 2048)
    out = np.empty_like(x)
    q = lowprec.quantize
    affine = lowprec.IntAffineFormat(8, 0.05, 3)
    cases = {
        "numpy copy": lambda: np.copyto(out, x),
        "fp8_e4m3fn, float32": lambda: q(x, "fp8_e4m3fn"),
        "fp8_e4m3fn, numpy float16": (lambda h: lambda: q(h, "fp8_e4m3fn"))(x.astype(np.float16)),
        "fp8_e4m3fn, torch bfloat16": (lambda t: lambda: q(t, "fp8_e4m3fn"))(torch.from_numpy(x).bfloat16()),
        "fp8_e4m3fn, transposed view": lambda: q(square.T, "fp8_e4m3fn"),
        "mxfp8_e4m3 along axis 0": lambda: q(square, "mxfp8_e4m3", axis=0),
        "mxfp8_e4m3 along axis 0, stochastic": lambda: q(square, "mxfp8_e4m3", "stochastic", axis=0, seed=1),
        "nvfp4 along axis 0": lambda: q(square, "nvfp4", axis=0),
        "int8 affine per channel, axis 0": (lambda f: lambda: q(square, f))(
            lowprec.IntAffineFormat(8, rng.uniform(0.01, 0.05, 2048), 0, axis=0)),
        "int8 affine per channel, last axis": (lambda f: lambda: q(square, f))(
            lowprec.IntAffineFormat(8, rng.uniform(0.01, 0.05, 2048), 0, axis=1)),
        "binary per channel, last axis": (lambda f: lambda: q(square, f))(
            lowprec.BinaryFormat(rng.uniform(0.5, 1.0, 2048), axis=1)),
        "ternary per channel, last axis": (lambda f: lambda: q(square, f))(
            lowprec.TernaryFormat(*rng.uniform(0.3, 1.0, (3, 2048)), axis=1)),
        "encode fp8_e4m3fn": lambda: lowprec.encode(x, "fp8_e4m3fn"),
        "encode mxfp8_e4m3": lambda: lowprec.encode(square, "mxfp8_e4m3"),
        "encode nvfp4": lambda: lowprec.encode(square, "nvfp4"),
        "encode int8 affine": lambda: lowprec.encode(x, affine),
        "decode fp8_e4m3fn": (lambda c: lambda: lowprec.decode(c, "fp8_e4m3fn"))(lowprec.encode(x, "fp8_e4m3fn")),
        "decode mxfp8_e4m3": (lambda c: lambda: lowprec.decode(c, "mxfp8_e4m3"))(lowprec.encode(square, "mxfp8_e4m3")),
        "decode int8 affine": (lambda c: lambda: lowprec.decode(c, affine))(lowprec.encode(x, affine)),
    }
    best = best_times(cases, args.repeat)
    copy = best["numpy copy"]
    print(f"{x.size} float32 values, 1 thread; ns an element, ratio to the numpy copy")
    for label, t in best.items():
        print(f"  {label:<42}{t / x.size * 1e9:8.2f} ns{copy / t:8.3f}x copy")


if __name__ == "__main__":
    main()
