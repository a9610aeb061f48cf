"""Peak extra memory of encode / decode / MAC.sum on 2**24 float32 values (tracemalloc, which numpy
reports its allocations to), as a multiple of the output's bytes and as MiB beyond it. The limit the
tests hold: 1.5x the output's bytes plus 64 MiB.

Run: python bench/memory.py [--log2 N]
"""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np

import lowprec

MiB = 2.0**20


def peak(fn):
    """(result, peak bytes allocated while fn ran, beyond what was allocated before)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    top = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return result, top


def nbytes(result) -> int:
    if isinstance(result, np.ndarray):
        return result.nbytes
    if hasattr(result, "codes"):  # block codes: element codes + scales
        return sum(nbytes(v) for v in (result.codes, result.scales))
    if isinstance(result, tuple):
        return sum(nbytes(v) for v in result)
    return np.asarray(result).nbytes


def cases():
    book = lowprec.LUTFormat(np.linspace(-2, 2, 16))
    yield "fp8_e5m2", "fp8_e5m2"
    yield "fp8_e4m3fn", "fp8_e4m3fn"
    yield "bf16", "bf16"
    yield "fp32", "fp32"
    yield "q3.12 (int16 codes)", "q3.12"
    yield "mxfp8_e4m3", "mxfp8_e4m3"
    yield "mxfp4_e2m1", "mxfp4_e2m1"
    yield "nvfp4", "nvfp4"
    yield "LUT 16", book
    yield "log4", lowprec.LogFormat(4)
    yield "int8 affine", lowprec.IntAffineFormat(8, 0.05, 0)
    yield "binary", lowprec.BinaryFormat(0.8)
    yield "ternary", lowprec.TernaryFormat(0.8, 0.8, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log2", type=int, default=24, help="log2 of the element count (default 24)")
    n = 2 ** ap.parse_args().log2
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    print(f"{n} float32 values ({x.nbytes / MiB:.0f} MiB); limit: 1.5x output + 64 MiB")
    print(f"{'format':22} {'op':7} {'output MiB':>10} {'peak MiB':>9} {'peak/out':>8}  within")
    for label, fmt in cases():
        codes, top = peak(lambda: lowprec.encode(x, fmt))
        out = nbytes(codes)
        rows = [("encode", out, top)]
        values, top = peak(lambda: lowprec.decode(codes, fmt))
        rows.append(("decode", nbytes(values), top))
        for op, out, top in rows:
            ok = top <= 1.5 * out + 64 * MiB
            print(f"{label:22} {op:7} {out / MiB:10.1f} {top / MiB:9.1f} {top / out:8.2f}  {'yes' if ok else 'NO'}")
    for acc in ("fp16", "fp32"):
        mac = lowprec.MAC(acc=acc, chunk=64, chunk_acc="fp32")
        _, top = peak(lambda: mac.sum(x))
        ok = top <= 64 * MiB
        print(f"{'MAC.sum ' + acc:22} {'sum':7} {0:10.1f} {top / MiB:9.1f} {top / x.nbytes:7.2f}x input  {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
