"""The bad-input catalogue: every row is a call to a public entry point with bad or special input and
what it must do (raise the named exception with a message naming the parameter, or give the documented
value). docs/bad_input.md is this table, written by ``python tests/test_bad_input.py``; a test keeps the
two in step."""

import sys
from pathlib import Path

import numpy as np
import pytest

import lowprec
import lowprec.testing
from lowprec import MAC, BlockFormat, FixedFormat, FloatFormat, IntAffineFormat, LogFormat, LUTFormat, formats

X = np.ones(4, np.float32)


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and bool(
        np.all((np.isnan(a) & np.isnan(b)) | ((a == b) & (np.signbit(a) == np.signbit(b)))))


def _read_only():
    out = np.empty(4, np.float32)
    out.flags.writeable = False
    return out


def _observer_before_data():
    from lowprec.observers import MinMaxObserver

    return MinMaxObserver().format(8)


# (entry point, what is wrong, call, expected: (exception, message) or ("value", check))
CATALOGUE = [
    ("quantize", "unknown format name", lambda: lowprec.quantize(X, "fp9"), (ValueError, "unknown format name 'fp9'")),
    ("quantize", "format of the wrong type", lambda: lowprec.quantize(X, 8), (TypeError, "fmt must be")),
    ("quantize", "unknown rounding mode", lambda: lowprec.quantize(X, "fp16", "banker"), (ValueError, "rounding must be one of")),
    ("quantize", "rbits out of range", lambda: lowprec.quantize(X, "fp16", "stochastic", rbits=0), (ValueError, "rbits")),
    ("quantize", "integer array", lambda: lowprec.quantize(np.ones(3, np.int32), "fp16"), (TypeError, "x must hold float16, bfloat16, float32 or float64")),
    ("quantize", "None", lambda: lowprec.quantize(None, "fp16"), (TypeError, "x must be")),
    ("quantize", "out of another shape", lambda: lowprec.quantize(X, "fp16", out=np.empty(3, np.float32)), (ValueError, "out has shape")),
    ("quantize", "out of another dtype", lambda: lowprec.quantize(X, "fp16", out=np.empty(4)), (TypeError, "out has dtype")),
    ("quantize", "read-only out", lambda: lowprec.quantize(X, "fp16", out=_read_only()), (ValueError, "out is read-only")),
    ("quantize", "NaN into a format without NaN, nan='raise'", lambda: lowprec.quantize(np.array([np.nan], np.float32), "fp4_e2m1fn", nan="raise"), (ValueError, "has no NaN")),
    ("quantize", "bad nan policy", lambda: lowprec.quantize(X, "fp16", nan="zero"), (ValueError, "nan must be one of")),
    ("quantize", "NaN into fp4_e2m1fn (no NaN)", lambda: lowprec.quantize(np.array([np.nan, -np.nan], np.float32), "fp4_e2m1fn"), ("value", lambda r: _same(r, np.array([-0.0, 0.0], np.float32)))),
    ("quantize", "Inf into fp8_e4m3fn (no Inf)", lambda: lowprec.quantize(np.array([np.inf], np.float32), "fp8_e4m3fn"), ("value", lambda r: np.isnan(r).all())),
    ("quantize", "-0 into fp8_e4m3fnuz (no -0)", lambda: lowprec.quantize(np.array([-0.0], np.float32), "fp8_e4m3fnuz"), ("value", lambda r: _same(r, np.array([0.0], np.float32)))),
    ("quantize", "float32 subnormal into fp16", lambda: lowprec.quantize(np.array([1e-45], np.float32), "fp16", "up"), ("value", lambda r: r[0] == 2.0**-24)),
    ("quantize", "empty array", lambda: lowprec.quantize(np.zeros(0, np.float32), "fp16"), ("value", lambda r: r.shape == (0,))),
    ("quantize", "0-d array", lambda: lowprec.quantize(np.array(2.7, np.float32), "int4"), ("value", lambda r: r.shape == () and r == 3.0)),
    ("quantize", "block format on a 0-d array", lambda: lowprec.quantize(np.float32(1), "mxfp8_e4m3"), (ValueError, "0-d")),
    ("quantize", "block axis out of range", lambda: lowprec.quantize(X, "mxfp8_e4m3", axis=2), (ValueError, "axis must be in")),
    ("quantize", "partial block with pad='raise'", lambda: lowprec.quantize(np.ones(40, np.float32), "mxfp8_e4m3", pad="raise"), (ValueError, "multiple of the block size")),
    ("quantize", "rounding a codebook does not have", lambda: lowprec.quantize(X, LUTFormat([0.0, 1.0]), "odd"), (ValueError, "rounding for a LUTFormat")),
    ("quantize", "rbits for a codebook format", lambda: lowprec.quantize(X, LUTFormat([0.0, 1.0]), "stochastic", seed=1, rbits=8), (ValueError, "rbits= does not apply to codebook")),
    ("quantize", "axis for a float format", lambda: lowprec.quantize(X, "fp16", axis=0), (ValueError, "axis= does not apply to float and fixed-point")),
    ("quantize", "nan='raise' for an affine format", lambda: lowprec.quantize(X, IntAffineFormat(8, 0.1), nan="raise"), (ValueError, "nan= does not apply to binary, ternary and integer-affine")),
    ("encode", "pad for a codebook format", lambda: lowprec.encode(X, LUTFormat([0.0, 1.0]), pad="raise"), (ValueError, "pad= does not apply to codebook")),
    ("decode", "dtype for a float format", lambda: lowprec.decode(np.zeros(2, np.uint8), "fp8_e4m3fn", dtype=np.float64), (ValueError, "dtype= does not apply to float and fixed-point")),
    ("decode", "nvfp4 codes without the tensor scale", lambda: lowprec.decode(lowprec.encode(X, "nvfp4").codes, "nvfp4", lowprec.encode(X, "nvfp4").scales), (TypeError, "needs tensor_scale")),
    ("MAC.sum", "empty array", lambda: MAC(acc="fp16").sum(np.zeros(0, np.float32)), ("value", lambda r: r == 0 and not np.signbit(r))),
    ("MAC.sum", "empty array, rounding down", lambda: MAC(acc="fp16", rounding="down").sum(np.zeros(0, np.float32)), ("value", lambda r: r == 0 and np.signbit(r))),
    ("encode", "NaN into a codebook", lambda: lowprec.encode(np.array([np.nan]), LUTFormat([0.0, 1.0])), (ValueError, "x holds NaN")),
    ("decode", "codes out of range", lambda: lowprec.decode(np.array([300]), "fp8_e4m3fn"), (ValueError, "codes must be in")),
    ("decode", "float codes", lambda: lowprec.decode(np.array([1.0]), "fp8_e4m3fn"), (TypeError, "codes must be an integer array")),
    ("decode", "block codes without scales", lambda: lowprec.decode(np.zeros(32, np.uint8), "mxfp8_e4m3"), (TypeError, "needs scales")),
    ("decode", "scales for a scalar format", lambda: lowprec.decode(np.zeros(2, np.uint8), "fp16", np.zeros(1)), (TypeError, "scales= is for block-scaled")),
    ("FloatFormat", "exp_bits out of range", lambda: FloatFormat(12, 3), (ValueError, "exp_bits must be in")),
    ("FloatFormat", "unknown specials", lambda: FloatFormat(4, 3, specials="weird"), (ValueError, "specials must be one of")),
    ("FloatFormat", "Inf overflow without Inf", lambda: FloatFormat(4, 3, specials="fn", overflow="inf"), (ValueError, "overflow='inf' needs")),
    ("FloatFormat", "ieee with no mantissa bits", lambda: FloatFormat(4, 0, specials="ieee"), (ValueError, "man_bits must be >= 1")),
    ("FixedFormat", "more than 64 bits", lambda: FixedFormat(40, 30), (ValueError, "int_bits \\+ frac_bits")),
    ("FixedFormat", "bad overflow", lambda: FixedFormat(8, 0, overflow="clip"), (ValueError, "overflow must be one of")),
    ("formats.names", "unknown kind", lambda: formats.names("complex"), (ValueError, "kind must be one of")),
    ("BlockFormat", "block size 0", lambda: BlockFormat("fp8_e4m3fn", block=0), (ValueError, "block must be in")),
    ("BlockFormat", "unknown scale rule", lambda: BlockFormat("fp8_e4m3fn", rule="round"), (ValueError, "rule must be one of")),
    ("LUTFormat", "empty codebook", lambda: LUTFormat([]), (ValueError, "codebook is empty")),
    ("LUTFormat", "codebook with NaN", lambda: LUTFormat([0.0, np.nan]), (ValueError, "codebook must hold finite")),
    ("LUTFormat", "duplicate entries", lambda: LUTFormat([1.0, 1.0]), (ValueError, "duplicate")),
    ("LogFormat", "bits out of range", lambda: LogFormat(1), (ValueError, "bits must be in")),
    ("IntAffineFormat", "zero scale", lambda: IntAffineFormat(8, 0.0), (ValueError, "scale must be finite and > 0")),
    ("IntAffineFormat", "bits out of range", lambda: IntAffineFormat(40, 1.0), (ValueError, "bits must be in")),
    ("IntAffineFormat", "zero point outside the range", lambda: IntAffineFormat(8, 1.0, 300), (ValueError, "zero_point must lie in")),
    ("observers", "parameters before any data", _observer_before_data, (ValueError, "has seen no data")),
    ("kmeans_codebook", "empty data", lambda: lowprec.kmeans_codebook(np.zeros(0), 2), (ValueError, "x is empty")),
    ("MAC", "unknown order", lambda: MAC(order="random"), (ValueError, "order must be one of")),
    ("MAC", "chunk 0", lambda: MAC(chunk=0), (ValueError, "chunk must be None or an int >= 1")),
    ("MAC", "fused with a mul format", lambda: MAC(mul="fp16", fused=True), (ValueError, "fused=True")),
    ("MAC", "unknown backend", lambda: MAC(backend="cuda"), (ValueError, "backend must be None .automatic., 'c' or 'triton'")),
    ("MAC.matmul", "c not of the accumulator's format", lambda: MAC(acc="fp16").matmul(np.ones((2, 3)), np.ones((3, 2)), np.full((2, 2), 0.1)), (ValueError, "c holds values that are not fp16 values")),
    ("MAC.matmul", "c with a pairwise order", lambda: MAC(acc="fp16", order="pairwise").matmul(np.ones((2, 3)), np.ones((3, 2)), np.zeros((2, 2))), (ValueError, "c= .* applies to sequential float accumulators and matrix units")),
    ("MAC", "more than 32 random bits", lambda: MAC(rounding="stochastic", rbits=40), (ValueError, "rbits must be in \\[1, 32\\]")),
    ("MAC", "block-scaled accumulator", lambda: MAC(acc="mxfp8_e4m3"), (TypeError, "acc must be a float or fixed-point format")),
    ("MAC", "codebook accumulator", lambda: MAC(acc=lowprec.LUTFormat([0.0, 1.0])), (TypeError, "is a LUTFormat")),
    ("MAC", "affine accumulator", lambda: MAC(acc=lowprec.IntAffineFormat(8, 0.1, 0)), (TypeError, "is an IntAffineFormat")),
    ("MAC.matmul", "shapes that do not chain", lambda: MAC().matmul(np.ones((2, 3), np.float32), np.ones((2, 3), np.float32)), (ValueError, "do not align")),
    ("MAC.sum", "0-d input", lambda: MAC().sum(np.float32(1)), (ValueError, "at least a 1-D array")),
    ("binary_matmul", "values other than +-1", lambda: lowprec.binary_matmul(np.array([[0.5]]), np.array([[1.0]])), (ValueError, "x must hold only -1, 1")),
    ("formats.get", "not a string", lambda: formats.get(3), (TypeError, "format name must be a str")),
    ("encode", "block format along a missing axis", lambda: lowprec.encode(X, "mxfp4_e2m1", axis=3), (ValueError, "axis must be in")),
    ("bfp", "mantissa width out of range", lambda: lowprec.bfp(1), (ValueError, "mantissa_bits must be in")),
    ("fit_twn", "all-zero weights", lambda: lowprec.fit_twn(np.zeros(5)), (ValueError, "nonzero")),
    ("set_num_threads", "zero threads", lambda: lowprec.set_num_threads(0), (ValueError, "n must be a positive int")),
    ("ternary_matmul", "values other than -1, 0, 1", lambda: lowprec.ternary_matmul(np.array([[2.0]]), np.array([[1.0]])), (ValueError, "x must hold only -1, 0, 1")),
    ("lut_matmul", "codes outside the codebook", lambda: lowprec.lut_matmul(np.array([[5]]), np.array([[0]]), LUTFormat([0.0, 1.0]), LUTFormat([0.0, 1.0])), (ValueError, "outside")),
    ("log_matmul", "a codebook that is not logarithmic", lambda: lowprec.log_matmul(np.array([[0]]), np.array([[0]]), LUTFormat([0.0]), LUTFormat([0.0])), (TypeError, "LogFormat")),
    ("cost.report", "not a MAC's counts", lambda: lowprec.cost.report({}), (ValueError, "counts has no")),
    ("cost.load_table", "a file that does not exist", lambda: lowprec.cost.load_table("/nonexistent.csv"), (ValueError, "does not exist")),
    ("formats.source", "unknown format name", lambda: formats.source("fp9"), (ValueError, "unknown format name")),
    ("BinaryFormat", "zero scale", lambda: lowprec.BinaryFormat(0.0), (ValueError, "alpha must be finite and > 0")),
    ("TernaryFormat", "negative threshold", lambda: lowprec.TernaryFormat(1.0, 1.0, -0.5), (ValueError, "delta must be finite and > 0")),
    ("fit_binary", "per-channel axis out of range", lambda: lowprec.fit_binary(np.ones((2, 2)), axis=5), (ValueError, "axis must be None or in")),
    ("fit_ttq", "a zero scale", lambda: lowprec.fit_ttq([1.0, 2.0], 0, 1), (ValueError, "w_p must be finite and > 0")),
    ("MAC.dot", "vectors of two lengths", lambda: MAC().dot(np.ones(3, np.float32), np.ones(4, np.float32)), (ValueError, "dot needs two 1-D vectors")),
    ("MAC.conv2d", "channels that do not fit", lambda: MAC().conv2d(np.ones((1, 2, 3, 3), np.float32), np.ones((1, 3, 2, 2), np.float32)), (ValueError, "does not fit")),
    ("testing.check_quantizer", "a quantizer that is wrong", lambda: lowprec.testing.check_quantizer(lambda x: x, "fp8_e4m3fn"), ("value", lambda r: not r and r.failed("representable"))),
    ("cost.area", "an SRAM table's area", lambda: lowprec.cost.area("mul", LUTFormat([0.0, 1.0])), (ValueError, "no SRAM area rows")),
    ("cost.memory_energy", "unknown memory", lambda: lowprec.cost.memory_energy(8, "tape"), (ValueError, "memory must be 'sram' or 'dram'")),
    ("cost.energy", "unknown operation", lambda: lowprec.cost.energy("div", "fp16"), (ValueError, "op must be one of")),
    ("cost.energy", "a format it cannot price", lambda: lowprec.cost.energy("add", LogFormat(4)), (ValueError, "cannot price add")),
]

try:  # the torch entry points
    import torch

    import lowprec.nn
    from lowprec.sims import accuracy

    from lowprec import nn as lnn
    from lowprec import ste
    from lowprec.optim import LowPrecisionOptimizer
    from lowprec.torch_quantize import quantize_torch

    T = torch.ones(4)
    CATALOGUE += [
        ("ste.quantize", "unknown estimator", lambda: ste.quantize(T, "fp16", estimator="soft"), (ValueError, "estimator must be one of")),
        ("ste.pact", "bits out of range", lambda: ste.pact(T, torch.tensor(1.0), 0), (ValueError, "bits must be an int")),
        ("nn.swap", "unknown format in a spec", lambda: lnn.swap(torch.nn.Linear(2, 2), {"Linear": {"weight": "fp9"}}), (ValueError, "unknown format name")),
        ("nn.swap", "unknown layer setting", lambda: lnn.swap(torch.nn.Sequential(torch.nn.Linear(2, 2)), {"Linear": {"weights": "fp16"}}), (ValueError, "unknown layer settings")),
        ("nn.swap", "key matching nothing, strict", lambda: lnn.swap(torch.nn.Sequential(torch.nn.Linear(2, 2)), {"Conv2d": {}}, strict=True), (ValueError, "matched nothing")),
        ("nn.swap", "spec file that does not exist", lambda: lnn.swap(torch.nn.Linear(2, 2), "/nonexistent.toml"), (ValueError, "does not exist")),
        ("nn.QLinear", "misspelt quantization key", lambda: lnn.QLinear(2, 2, weigth="fp16"), (TypeError, "QLinear got unexpected keyword argument.*'weigth'; did you mean 'weight'")),
        ("nn.QMatmul", "unknown keyword", lambda: lnn.QMatmul(bias=True), (TypeError, "QMatmul got unexpected keyword argument.*its quantization keys")),
        ("nn.QLinear", "unknown MAC mode", lambda: lnn.QLinear(2, 2, mac={"mode": "exact"}), (ValueError, "mac mode must be one of")),
        ("nn.calibrate", "no batches", lambda: lnn.calibrate(torch.nn.Sequential(torch.nn.Linear(2, 2)), []), (ValueError, "batches was empty")),
        ("cost.profile", "an unknown spec key", lambda: lowprec.cost.profile(torch.nn.Linear(2, 2), T[:2], {"weights": "fp16"}), (ValueError, "unknown keys .'weights'.; allowed: weight, input, acc")),
        ("cost.model_storage", "an unknown weight format", lambda: lowprec.cost.model_storage(torch.nn.Sequential(torch.nn.Linear(2, 2)), {"weight": "fp9"}), (ValueError, "unknown format name")),
        ("observers.update", "a NaN batch", lambda: lowprec.observers.MinMaxObserver().update(torch.tensor([float("nan")])), (ValueError, "NaN or Inf")),
        ("optim.LowPrecisionOptimizer", "not a torch optimizer", lambda: LowPrecisionOptimizer(None), (TypeError, "torch.optim.Optimizer")),
        ("torch_quantize.quantize_torch", "float16 tensor", lambda: quantize_torch(T.half(), "fp8_e4m3fn"), (TypeError, "float32 or float64")),
        ("quantize", "float16 tensor", lambda: lowprec.quantize(T.half(), "fp8_e4m3fn"), ("value", lambda r: r.dtype == torch.float16)),
        ("quantize", "bfloat16 tensor into a format bfloat16 cannot hold", lambda: lowprec.quantize(T.bfloat16(), "fp16"), (TypeError, "bfloat16 cannot hold")),
        ("quantize", "int32 tensor", lambda: lowprec.quantize(T.int(), "fp16"), (TypeError, "float16, bfloat16, float32 or float64 tensor")),
        ("sims.accuracy.run_grid", "epochs=0", lambda: accuracy.run_grid(["fp32"], "/nonexistent-never-written", epochs=0), (ValueError, "epochs must be an int >= 1")),
        ("quantize", "unknown backend", lambda: lowprec.quantize(T, "fp16", backend="gpu"), (ValueError, "backend must be None .automatic. or one of 'c', 'torch', 'triton'")),
        ("quantize", "backend='triton' for a numpy array", lambda: lowprec.quantize(X, "fp16", backend="triton"), (TypeError, "backend='triton' takes torch tensors")),
        ("quantize", "backend='triton' for a wrapping fixed-point format", lambda: lowprec.quantize(T, lowprec.FixedFormat(8, 0, overflow="wrap"), backend="triton"), (ValueError, "does not wrap")),
        ("quantize", "backend='triton' for MXFP8 on a float64 tensor", lambda: lowprec.quantize(T.double(), "mxfp8_e4m3", backend="triton"), (ValueError, "takes float32 tensors in e8m0-scaled")),
        ("quantize", "backend='torch' for a codebook format", lambda: lowprec.quantize(T, LUTFormat([0.0, 1.0]), backend="torch"), (ValueError, "backend='torch' has no path for")),
        ("nn.emulate", "unknown op kind in a module pattern", lambda: lnn.emulate(torch.nn.Linear(2, 2), {"enc.*": {"lineer": {}}}), (ValueError, "unknown op kinds .'lineer'.; op kinds: linear")),
        ("nn.emulate", "unknown setting of an op kind", lambda: lnn.emulate(torch.nn.Linear(2, 2), {"linear": {"format": "bf16"}}), (ValueError, "unknown settings .'format'.; allowed: input")),
        ("nn.emulate", "a model already emulated", lambda: lnn.emulate(lnn.emulate(torch.nn.Linear(2, 2), {}), {}), (ValueError, "already emulated")),
        ("nn.emulate", "key matching no op run, strict", lambda: lnn.emulate(torch.nn.Sequential(torch.nn.Linear(2, 2)), {"conv": {"input": "bf16"}}, strict=True)(T[:2]), (ValueError, "matched no op the model ran: .'conv'.")),
        ("nn.emulate", "a block format on a 1-element reduction", lambda: lnn.emulate(torch.nn.Sequential(torch.nn.Linear(1, 2)), {"linear": {"input": "mxfp8_e4m3"}})(T[:1]), (ValueError, "linear in module '0': block format mxfp8_e4m3 along a reduction of 1 element")),
        ("nn.unemulate", "a model not emulated", lambda: lnn.unemulate(torch.nn.Linear(2, 2)), (ValueError, "not emulated")),
        ("nn.QLinear", "axes with an unknown operand", lambda: lowprec.nn.QLinear(4, 4, weight="mxfp8_e4m3", axes={"bias": 0}), (ValueError, "axes must be a dict")),
    ]
except ImportError:
    pass


def _ids():
    return [f"{entry}: {what}" for entry, what, _, _ in CATALOGUE]


@pytest.mark.parametrize("entry, what, call, expected", CATALOGUE, ids=_ids())
def test_catalogue(entry, what, call, expected):
    kind, detail = expected
    if kind == "value":
        assert detail(call()), f"{entry}: {what}"
    else:
        with pytest.raises(kind, match=detail):
            call()


def markdown() -> str:
    lines = ["# Bad input: what each public entry point does", "",
             "Generated from tests/test_bad_input.py (`python tests/test_bad_input.py > docs/bad_input.md`).", "",
             "| entry point | input | result |", "| --- | --- | --- |"]
    for entry, what, _, (kind, detail) in CATALOGUE:
        result = "the documented value" if kind == "value" else f"{kind.__name__}: \"{detail.replace(chr(92), '')}...\""
        lines.append(f"| `{entry}` | {what} | {result} |")
    return "\n".join(lines) + "\n"


def test_docs_table_is_current():
    doc = Path(__file__).resolve().parent.parent / "docs" / "bad_input.md"
    assert doc.read_text() == markdown(), "regenerate: python tests/test_bad_input.py > docs/bad_input.md"


if __name__ == "__main__":
    sys.stdout.write(markdown())
