"""Where a fake-quant training step's host time goes on a GPU: per-call host cost of lowprec.quantize
and of a bare launch of the float kernel (no sync; small tensors), and a cProfile of ResNet-18 fake
steps (batch 256). Usage: python bench/gpu_overhead.py"""

import cProfile
import pstats
import time

import numpy as np
import torch

import lowprec
from lowprec.kernels import gpu
from lowprec.kernels.params import qparams

from gpu import train_step  # bench/gpu.py


def per_call(fn, n=2000):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    host = (time.perf_counter() - t0) / n
    torch.cuda.synchronize()
    return host


def main():
    x = torch.randn(4096, device="cuda")
    y = torch.empty_like(x)
    fmt = lowprec.formats.get("fp8_e4m3fn")
    p = qparams(fmt, np.dtype(np.float32), "nearest_even", None)
    print(f"host us per call: empty_like {per_call(lambda: torch.empty_like(x)) * 1e6:.1f}, "
          f"x * 2 {per_call(lambda: x * 2) * 1e6:.1f}, "
          f"bare launch {per_call(lambda: gpu.quantize_float(x, y, p, 0, 32, 0)) * 1e6:.1f}, "
          f"lowprec.quantize {per_call(lambda: lowprec.quantize(x, fmt)) * 1e6:.1f}, "
          f"ste.quantize {per_call(lambda: lowprec.ste.quantize(x, fmt)) * 1e6:.1f}")
    spec = {k: {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "grad": "fp8_e5m2"} for k in ("Linear", "Conv2d")}
    xb = torch.randn(256, 3, 32, 32, device="cuda")
    yb = torch.randint(0, 10, (256,), device="cuda")
    for label, s in (("fp32", None), ("fake fp8", spec)):
        step = train_step(s, xb, yb)
        for _ in range(12):
            step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            step()
        host = (time.perf_counter() - t0) / 10
        torch.cuda.synchronize()
        wall = (time.perf_counter() - t0) / 10
        print(f"{label}: host {host * 1e3:.2f} ms per step (enqueue), wall {wall * 1e3:.2f} ms")
        if s:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(10):
                step()
            torch.cuda.synchronize()
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(22)


if __name__ == "__main__":
    main()
