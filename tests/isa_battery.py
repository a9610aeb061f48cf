"""The bits of a battery of C-core calls, as one digest: every C path (the float quantizer in every mode,
block, float-scaled, codebook, log, affine, binary and ternary formats, encode/decode, the MAC engine
and its fused and matrix-unit paths) on float32 and float64 inputs with specials, subnormals and ties.
.ci/isa-paths runs it on builds for one instruction set each (AVX-512, AVX2, plain C) and on the
dispatching build: every path must give the same digest.
Usage: python tests/isa_battery.py [--verbose]  (prints the digest; --verbose one line per case)
"""

import hashlib
import sys

import ml_dtypes
import numpy as np

import lowprec
from lowprec import MAC


def _inputs():
    rng = np.random.default_rng(2024)
    x = (rng.standard_normal(70001) * 2.0 ** rng.integers(-30, 30, 70001)).astype(np.float64)
    x[:12] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 5e-324, 448.0, 464.0, -65520.0, 2.5]
    ties = np.arange(-300, 300) * 0.25  # many exact ties for the narrow formats
    return np.concatenate([x, ties])


def cases():
    x64 = _inputs()
    x32 = x64.astype(np.float32)
    modes = lowprec.ROUNDING_MODES
    for fmt in ("fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "fp4_e2m1fn", "q8.8", "binary8p3", "fp8_e4m3fnuz"):
        for mode in modes:
            for x in (x32, x64):
                yield f"{fmt} {mode} {x.dtype}", lowprec.quantize(x, fmt, mode, seed=3)
    yield "fp8 stochastic rbits=6", lowprec.quantize(x32, "fp8_e4m3fn", "stochastic", seed=5, rbits=6)
    for half in (np.float16, ml_dtypes.bfloat16):  # the C widening and narrowing of half arrays
        with np.errstate(over="ignore"):
            h = x32.astype(half)
        yield f"{half.__name__} array fp8_e5m2", lowprec.quantize(h, "fp8_e5m2").view(np.uint16)
    for x in (x32, x64):  # a byte a draw (rbits <= 8): a flat-shift format and a sign-dependent one
        yield f"bf16 stochastic rbits=8 {x.dtype}", lowprec.quantize(x, "bf16", "stochastic", seed=6, rbits=8)
        yield f"q8.8 stochastic rbits=3 {x.dtype}", lowprec.quantize(x, "q8.8", "stochastic", seed=6, rbits=3)
    blocks = x32[:65536].reshape(256, 256)
    for fmt in ("mxfp8_e4m3", "mxfp4_e2m1", "mxint8", "nvfp4", lowprec.bfp(12, 16)):
        for mode in ("nearest_even", "stochastic", "toward_zero"):
            yield f"{fmt} {mode}", lowprec.quantize(np.nan_to_num(blocks), fmt, mode, seed=7)
    for fmt in ("mxfp8_e4m3", "mxint8"):  # blocks down the columns (axis 0: lp_block_cols)
        yield f"{fmt} axis 0", lowprec.quantize(blocks, fmt, "nearest_even", axis=0)
    fp4_8 = lowprec.BlockFormat("fp4_e2m1fn", block=8, scale="fp8_e4m3fn")
    for b in (blocks, x64[:65536].reshape(256, 256)):  # float-scaled steps: signed bounds, any block size
        yield f"nvfp4 up {b.dtype}", lowprec.quantize(b, "nvfp4", "up")
        yield f"fp4 x 8 nearest_even {b.dtype}", lowprec.quantize(b, fp4_8, "nearest_even")
        yield f"fp4 x 8 stochastic {b.dtype}", lowprec.quantize(b, fp4_8, "stochastic", seed=3)  # lp_sr_steps
        yield f"int8 affine stochastic {b.dtype}", lowprec.quantize(b, lowprec.IntAffineFormat(8, 0.01, 3), "stochastic",
                                                                    seed=3)  # lp_sr_integer
    book = lowprec.LUTFormat(np.sort(np.random.default_rng(1).standard_normal(256)))
    small = lowprec.LUTFormat(np.sort(np.random.default_rng(2).standard_normal(16)))
    for fmt in (book, small, lowprec.LogFormat(4), lowprec.LogFormat(8)):
        yield f"{fmt!r}", lowprec.quantize(x32, fmt)
    for entries in (20, 40):  # the scan, or (float32, AVX-512) a search of permutes over two or four registers
        mid = lowprec.LUTFormat(np.sort(np.random.default_rng(entries).standard_normal(entries)))
        for mode in ("nearest_even", "up"):
            yield f"lut {entries} {mode}", lowprec.quantize(x32, mid, mode)
    rows = lowprec.LUTFormat(np.sort(np.random.default_rng(4).standard_normal((256, 24)), axis=1), axis=0)
    yield "lut per channel", lowprec.quantize(blocks, rows)
    yield "lut encode", np.asarray(lowprec.encode(np.nan_to_num(x32), small), np.float64)
    for fmt in (small, lowprec.LogFormat(4)):  # one fused AVX-512 pass on x86-64-v4, two passes elsewhere
        yield f"{fmt!r} stochastic", lowprec.quantize(x32, fmt, "stochastic", seed=5)
    big = np.resize(x32, 1 << 20)  # the bucket index (csrc/lut_impl.h), searched and stepped in pieces
    for mode in ("nearest_even", "stochastic"):
        yield f"lut bucket {mode}", lowprec.quantize(big, book, mode, seed=4)
    for mode in ("nearest_even", "down", "stochastic"):
        yield f"int8 affine {mode}", lowprec.quantize(x32, lowprec.IntAffineFormat(8, 0.05, 3), mode, seed=9)
    chan = lowprec.IntAffineFormat(8, np.linspace(0.01, 0.2, 256), np.arange(256) % 7 - 3, axis=0)
    yield "int8 affine per channel", lowprec.quantize(blocks, chan)
    yield "binary", lowprec.quantize(x32, lowprec.fit_binary(np.nan_to_num(x32[:4096])))
    yield "binary stochastic", lowprec.quantize(np.nan_to_num(x32), lowprec.fit_binary(np.nan_to_num(x32[:4096])),
                                                "stochastic", seed=2)
    yield "ternary", lowprec.quantize(x32, lowprec.fit_twn(np.nan_to_num(x32[:4096])))
    codes = np.arange(256, dtype=np.uint8)
    yield "decode fp8", np.asarray(lowprec.decode(codes, "fp8_e4m3fn"), np.float64)
    yield "encode fp8", np.asarray(lowprec.encode(np.nan_to_num(x32, posinf=0, neginf=0), "fp8_e4m3fn"), np.float64)
    rng = np.random.default_rng(3)
    A = lowprec.quantize(rng.standard_normal((37, 300)).astype(np.float32), "fp8_e4m3fn")
    B = lowprec.quantize(rng.standard_normal((300, 29)).astype(np.float32), "fp8_e4m3fn")
    for kw in ({"acc": "fp16"}, {"acc": "fp16", "chunk": 32, "chunk_acc": "fp32"}, {"acc": "fp16", "fused": True},
               {"acc": "bf16", "rounding": "stochastic", "seed": 4},
               {"mul": "bf16", "acc": "fp16", "chunk": 32, "rounding": "stochastic", "seed": 5}, {"acc": "fp32"}, {"acc": "bf16", "rounding": "up"},
               {"mul": "bf16", "acc": "fp16", "order": "pairwise"}, {"acc": "q8.8"}, {"unit": "h100_fp8"},
               {"unit": "h100_fp8", "chunk": 128, "chunk_acc": "fp32"}, {"unit": "h100_fp16_acc16"}):
        yield f"mac {kw}", MAC(**kw).matmul(A, B)
    yield "mac sum", MAC(acc="fp16").sum(A, axis=1)
    yield "mac narrow", MAC(acc="fp16", chunk=16, chunk_acc="fp32").matmul(A, B[:, :5])
    # products below fp16's grid (the half rounding's subnormal range), two row tiles and a ragged one
    G = lowprec.quantize(rng.standard_normal((37, 300)) * 2.0**-12, "fp8_e5m2")
    H = lowprec.quantize(rng.standard_normal((300, 29)) * 2.0**-6, "fp8_e4m3fn")
    for kw in ({"acc": "fp16"}, {"acc": "fp16", "chunk": 16, "chunk_acc": "fp32"}, {"acc": "fp16", "chunk": 64}):
        yield f"mac tiny {kw}", MAC(**kw).matmul(G, H)
    yield "mac tiny b200_fp16_acc16", MAC(unit="b200_fp16_acc16").matmul(G, H)  # steps under its floor 2**-15
    wide = rng.standard_normal((37, 300)) * 2.0 ** rng.integers(-40, 40, (37, 300))
    F = wide.astype(np.float32)  # float32 operands into fp32: fused multiply-adds
    for kw in ({"acc": "fp32"}, {"acc": "fp32", "chunk": 32, "chunk_acc": "fp32"}):
        yield f"mac float32 {kw}", MAC(**kw).matmul(F, np.ascontiguousarray(F.T[:, :29]))
    # int8 operands into 16-bit accumulators that overflow (C float32 lanes), saturating and wrapping
    from dataclasses import replace

    I = rng.integers(-128, 128, (37, 300)).astype(np.float32)
    J = rng.integers(-128, 128, (300, 29)).astype(np.float32)
    for acc in (lowprec.formats.get("int16"), replace(lowprec.formats.get("int16"), overflow="wrap"),
                lowprec.formats.get("q8.8")):
        mac = MAC(acc=acc)
        yield f"mac int8 into {acc}", mac.matmul(I, J)
        yield f"mac int8 into {acc}: overflows", [mac.counts["overflows"]]


def main():
    digest = hashlib.sha256()
    for name, value in cases():
        arr = np.ascontiguousarray(np.asarray(value, np.float64))
        part = hashlib.sha256(arr.tobytes()).hexdigest()
        digest.update(name.encode() + part.encode())
        if "--verbose" in sys.argv:
            print(f"{part[:16]}  {name}")
    print(digest.hexdigest())


if __name__ == "__main__":
    main()
