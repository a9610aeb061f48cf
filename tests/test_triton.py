"""The Triton kernels are bit-identical to the C core: on CPU tensors through Triton's interpreter
(every CI run), on CUDA tensors where a GPU is present. Also the backend choice and its errors."""

import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers import need_triton

torch = pytest.importorskip("torch")
need_triton()  # skipped without triton, except under CI

import lowprec  # noqa: E402
from lowprec.array.scalar import quantize_at  # noqa: E402
from lowprec.kernels import gpu  # noqa: E402
from lowprec.kernels.params import qparams  # noqa: E402
from lowprec.kernels.philox import counter_offset  # noqa: E402
from lowprec.testing import strategies as lst  # noqa: E402

from helpers import assert_same, boundary_inputs, random_floats  # noqa: E402

RNG = np.random.default_rng(47)
NAMES = [n for n in lowprec.formats.names("scalar")
         if not (isinstance(lowprec.formats.get(n), lowprec.FixedFormat) and lowprec.formats.get(n).overflow == "wrap")]
CUDA = torch.cuda.is_available()
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])
HALVES = [torch.float16, torch.bfloat16]


def _inputs(name, dtype, device):
    """Random patterns and common values, and every boundary of the format: all of them for formats of
    at most 8 bits (and on a GPU), a sample of 4000 for wider ones under the interpreter."""
    x = random_floats(RNG, 3000, dtype)
    fmt = lowprec.formats.get(name)
    if fmt.bits <= 16:
        edges = boundary_inputs(name, dtype)
        if fmt.bits > 8 and device == "cpu":
            edges = RNG.choice(edges, 4000, replace=False)
        x = np.concatenate([edges, x]).astype(dtype)
    return x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_named_formats_every_mode(name, dtype, device):
    fmt = lowprec.formats.get(name)
    x = _inputs(name, dtype, device)
    t = torch.from_numpy(x).to(device)
    for mode in lowprec.ROUNDING_MODES:
        for rbits in ([None, 1, 7, 23] if mode == "stochastic" else [None]):
            try:
                expected = lowprec.quantize(x, fmt, mode, seed=5, rbits=rbits)
            except ValueError:
                continue  # a format with no value the dtype holds
            got = lowprec.quantize(t, fmt, mode, seed=5, rbits=rbits, backend="triton").cpu().numpy()
            assert_same(got, expected, f"{name} {mode} rbits={rbits} {device}")


@settings(max_examples=60, deadline=None)
@given(lst.formats(named=False, max_exp_bits=9, max_man_bits=6), st.sampled_from(lowprec.ROUNDING_MODES),
       st.sampled_from([np.float32, np.float64]), st.data())
def test_generated_formats_and_values(fmt, mode, dtype, data):
    if isinstance(fmt, lowprec.FixedFormat) and fmt.overflow == "wrap":
        return
    width = 32 if dtype == np.float32 else 64
    x = data.draw(hnp.arrays(dtype, st.integers(1, 40), elements=lst.floats_near(fmt, width=width)))
    try:
        expected = lowprec.quantize(x, fmt, mode, seed=9)
    except ValueError:
        return
    got = lowprec.quantize(torch.from_numpy(x), fmt, mode, seed=9, backend="triton").numpy()
    assert_same(got, expected, f"{fmt} {mode}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("half", HALVES, ids=str)
def test_half_tensors_in_and_out(half, device):
    """float16/bfloat16 tensors are read and written in their dtype: the values of quantizing their
    float32 widening, for every format the dtype holds."""
    x = torch.from_numpy(random_floats(RNG, 5000, np.float32, scale_exp=(-20, 10))).to(half)
    for name in ("fp8_e4m3fn", "fp8_e5m2", "fp4_e2m1fn", "fp6_e3m2fn", "int8", "bf16" if half == torch.bfloat16 else "fp16"):
        for mode in ("nearest_even", "stochastic", "down"):
            expected = lowprec.quantize(x.float(), name, mode, seed=3, backend="c")
            got = lowprec.quantize(x.to(device), name, mode, seed=3, backend="triton")
            assert got.dtype == half
            assert_same(got.cpu().float().numpy(), expected.numpy(), f"{name} {mode} {half}")
            # bit for bit, NaN signs included: float32 patterns are exact in the half type
            bits = expected.half().view(torch.int16) if half == torch.float16 else (expected.view(torch.int32) >> 16).short()
            assert torch.equal(got.cpu().view(torch.int16), bits), (name, mode, half)


def test_chunk_offsets_draw_what_the_whole_array_draws():
    """A launch at a counter offset continues the whole array's stream (the C core's quantize_at)."""
    fmt = lowprec.formats.get("fp8_e5m2")
    x = random_floats(RNG, 5 * 1024, np.float32)
    key = 0xFEED_0123_4567_89AB
    expected = quantize_at(x[3072:], fmt, "stochastic", key, None, 3072)
    got = torch.empty(len(x) - 3072)
    gpu.quantize_float(torch.from_numpy(x[3072:]), got, qparams(fmt, np.dtype(np.float32), "stochastic", None), 6, 32,
                       key, counter_offset(3072, np.float32))
    assert_same(got.numpy(), expected)


def _same_bits(a, b):
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return a.dtype == b.dtype and torch.equal(a.view(ints), b.view(ints))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_every_launch_setting_gives_the_same_bits(dtype, device):
    """The tile shapes and layouts bench/gpu.py sweeps all give the C core's bits."""
    x = torch.from_numpy(random_floats(RNG, 5000, np.float32, scale_exp=(-20, 10))).to(dtype)
    width = 64 if dtype == torch.float64 else 32
    fmt = lowprec.formats.get("fp8_e5m2")
    for mode, rounding, variants in ((0, "nearest_even", [dict(units=u) for u in (1, 2, 8)]),
                                     (6, "stochastic", [dict(join=False), dict(join=True)])):
        expected = lowprec.quantize(x, fmt, rounding, seed=11, backend="c")
        params = qparams(fmt, np.dtype(np.float64 if width == 64 else np.float32), rounding, None)
        for v in variants:
            got = torch.empty_like(x, device=device)
            gpu.quantize_float(x.to(device), got, params, mode, width, 11, **v)
            assert _same_bits(got.cpu(), expected), (rounding, v)


@pytest.mark.parametrize("device", DEVICES)
def test_layouts_are_kept_and_draws_follow_the_logical_order(device):
    x = torch.randn(2, 3, 4, 5, device=device).to(memory_format=torch.channels_last)
    for mode in ("nearest_even", "stochastic"):
        expected = lowprec.quantize(x.cpu().contiguous(), "fp8_e4m3fn", mode, seed=2)
        for backend in ("triton", "torch"):
            q = lowprec.quantize(x, "fp8_e4m3fn", mode, seed=2, backend=backend)
            assert q.is_contiguous(memory_format=torch.channels_last), (mode, backend)
            assert torch.equal(q.cpu(), expected), (mode, backend)
    y = torch.randn(6, 8, device=device)[:, ::2]  # not dense: a contiguous result of the same values
    assert torch.equal(lowprec.quantize(y, "fp16", backend="triton").cpu(), lowprec.quantize(y.cpu().contiguous(), "fp16"))


def test_out_and_nan_policy_on_the_device_backends():
    x = torch.tensor([1.1, -2.7, float("nan")])
    for backend in ("triton", "torch"):
        out = torch.empty(3)
        assert lowprec.quantize(x, "fp16", out=out, backend=backend) is out
        assert_same(out.numpy(), lowprec.quantize(x.numpy(), "fp16"))
        with pytest.raises(ValueError, match="nan='raise'"):
            lowprec.quantize(x, "int8", nan="raise", backend=backend)
        with pytest.raises(TypeError, match="out must be a tensor of x's shape"):
            lowprec.quantize(x, "fp16", out=torch.empty(4), backend=backend)
    assert_same(x.numpy(), np.array([1.1, -2.7, np.nan], np.float32))  # x itself untouched


def test_backend_choice_and_refusals():
    from lowprec.array.backend import choose

    fp8 = lowprec.formats.get("fp8_e4m3fn")
    assert choose(None, np.ones(3), fp8) == "c"
    assert choose(None, torch.ones(3), fp8) == "c"
    assert choose("triton", torch.ones(3), fp8) == "triton"
    with pytest.raises(ValueError, match="backend must be None .* 'c', 'torch', 'triton'; got 'cuda'"):
        lowprec.quantize(torch.ones(3), fp8, backend="cuda")
    with pytest.raises(TypeError, match="backend='triton' takes torch tensors"):
        lowprec.quantize(np.ones(3, np.float32), fp8, backend="triton")
    with pytest.raises(ValueError, match="does not wrap"):
        lowprec.quantize(torch.ones(3), lowprec.FixedFormat(8, 0, overflow="wrap"), backend="triton")
    with pytest.raises(ValueError, match="backend='triton' takes float32/float64 tensors; .* ndarray"):
        lowprec.quantize(np.ones(32), lowprec.LUTFormat([0.0, 1.0]), backend="triton")
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        lowprec.quantize(torch.ones(3, dtype=torch.int32), fp8, backend="triton")
    # the interpreter runs without the caller setting TRITON_INTERPRET, and leaves it as it was
    before = os.environ.get("TRITON_INTERPRET")
    gpu._module.cache_clear()  # load the kernels again: the variable is set for the load only
    assert torch.equal(lowprec.quantize(torch.tensor([1.3]), fp8, backend="triton"), torch.tensor([1.25]))
    assert os.environ.get("TRITON_INTERPRET") == before


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_tensors_choose_triton_and_allocate_only_the_output():
    from lowprec.array.backend import choose

    x = torch.randn(1 << 24, device="cuda")
    assert choose(None, x, lowprec.formats.get("fp8_e4m3fn")) == "triton"
    for mode in ("nearest_even", "stochastic"):
        lowprec.quantize(x, "fp8_e4m3fn", mode, seed=1)  # compile outside the measurement
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        y = lowprec.quantize(x, "fp8_e4m3fn", mode, seed=1)
        torch.cuda.synchronize()
        extra = torch.cuda.max_memory_allocated() - base
        assert extra <= y.numel() * y.element_size() + (1 << 20), (mode, extra)


MX_NAMES = [n for n in lowprec.formats.names() if isinstance(lowprec.formats.get(n), lowprec.BlockFormat)
            and lowprec.formats.get(n).scale_is_e8m0]


def _blocked_inputs(shape):
    """Random values over many binades with a zero block, an Inf, a NaN and a block of subnormals."""
    x = (RNG.standard_normal(shape) * np.exp2(RNG.integers(-40, 40, shape))).astype(np.float32)
    x[0, :32, 0] = 0
    x[1, 3, 1], x[2, 40, 2] = np.inf, np.nan
    x[3, :, 3] = 1e-40
    return x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", MX_NAMES)
def test_mx_formats_every_mode_rule_and_axis(name, device):
    """e8m0 block formats: every mode and scale rule, blocks along the last, a middle and the first
    axis with a partial last block (70 = 2 x 32 + 6), specials: the C core's bits."""
    base = lowprec.formats.get(name)
    x = _blocked_inputs((4, 70, 5))
    t = torch.from_numpy(x).to(device)
    every = name == "mxfp8_e4m3" or device == "cuda"  # the interpreter is slow: every rule on one format
    for rule in ("floor", "ceil", "rceil", "even") if every else ("floor",):
        fmt = lowprec.BlockFormat(base.element, block=32, rule=rule)
        for mode in lowprec.ROUNDING_MODES:
            for axis in ((1, -1, 0) if rule == "floor" and every else (1,)):
                expected = lowprec.quantize(x, fmt, mode, axis=axis, seed=13)
                got = lowprec.quantize(t, fmt, mode, axis=axis, seed=13, backend="triton").cpu().numpy()
                assert_same(got, expected, f"{name} {rule} {mode} axis={axis}")


@pytest.mark.parametrize("device", DEVICES)
def test_mx_odd_block_sizes_and_rbits(device):
    x = _blocked_inputs((4, 70, 5))
    t = torch.from_numpy(x).to(device)
    for block in (1, 7, 48, 70, 128):
        fmt = lowprec.BlockFormat("fp8_e4m3fn", block=block, rule="even")
        for mode, rbits in (("nearest_even", None), ("stochastic", None), ("stochastic", 5)):
            expected = lowprec.quantize(x, fmt, mode, axis=1, seed=2, rbits=rbits)
            got = lowprec.quantize(t, fmt, mode, axis=1, seed=2, rbits=rbits, backend="triton").cpu().numpy()
            assert_same(got, expected, f"block={block} {mode} rbits={rbits}")


def test_mx_backend_refusals_and_out():
    x = torch.randn(4, 64)
    with pytest.raises(ValueError, match="backend='triton' takes float32 tensors in e8m0-scaled"):
        lowprec.quantize(x.double(), "mxfp8_e4m3", backend="triton")
    with pytest.raises(ValueError, match="backend='torch' has no path for mxfp8_e4m3; it takes 'c', or 'triton'"):
        lowprec.quantize(x, "mxfp8_e4m3", backend="torch")
    with pytest.raises(ValueError, match="pad='raise'"):
        lowprec.quantize(torch.randn(4, 70), "mxfp8_e4m3", pad="raise", backend="triton")
    out = torch.empty(4, 64)
    assert lowprec.quantize(x, "mxfp8_e4m3", out=out, backend="triton") is out
    assert torch.equal(out, lowprec.quantize(x, "mxfp8_e4m3", backend="c"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_binary_and_ternary_formats(dtype, device):
    """Per tensor and per channel (a middle and the first axis), sign and BinaryConnect's stochastic
    rounding, NaN kept: the host path's values bit for bit."""
    x = torch.from_numpy(random_floats(RNG, 4 * 5 * 70, np.float32, scale_exp=(-3, 3)).reshape(4, 5, 70)).to(dtype)
    x[0, 0, :3] = torch.tensor([float("nan"), 0.0, -0.0], dtype=dtype)
    formats = [lowprec.BinaryFormat(0.7), lowprec.BinaryFormat(np.linspace(0.25, 2.0, 5), axis=1),
               lowprec.BinaryFormat(np.array([0.5, 1.0, 2.0, 4.0]), axis=0), lowprec.TernaryFormat(0.9, 1.1, 0.3),
               lowprec.TernaryFormat(np.linspace(1, 2, 5), np.linspace(0.5, 1, 5), np.linspace(0.1, 0.5, 5), axis=1)]
    for fmt in formats:
        for mode in ("nearest_even", "stochastic"):
            expected = lowprec.quantize(x, fmt, mode, seed=21, backend="c")
            got = lowprec.quantize(x.to(device), fmt, mode, seed=21, backend="triton").cpu()
            assert_same(got.numpy(), expected.numpy(), f"{fmt} {mode}")
    with pytest.raises(ValueError, match="backend='triton' takes float32/float64 tensors; .* runs on 'c'"):
        lowprec.quantize(x.numpy(), lowprec.TernaryFormat(0.5, 0.5, 0.25), backend="triton")
    with pytest.raises(ValueError, match="x has 5 along axis 1"):
        lowprec.quantize(x, lowprec.BinaryFormat(np.ones(3), axis=1), backend="triton")


def test_a_triton_failure_falls_back_to_torch_ops_once_with_a_warning(monkeypatch):
    from lowprec.array import device

    def broken(*args, **kwargs):
        raise RuntimeError("compile failed (simulated)")

    monkeypatch.setattr(gpu, "quantize_float", broken)
    monkeypatch.setattr(device, "_fell_back", set())
    x = torch.randn(300).to(torch.bfloat16)
    fmt = lowprec.formats.get("fp8_e5m2")
    with pytest.warns(RuntimeWarning, match="the Triton kernel failed for fp8_e5m2 .*compile failed"):
        got = device.quantize_device(x, fmt, "nearest_even", "triton", automatic=True)
    assert got.dtype == torch.bfloat16 and torch.equal(got, lowprec.quantize(x, fmt, backend="c"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per format
        device.quantize_device(x, fmt, "nearest_even", "triton", automatic=True)
    with pytest.raises(RuntimeError, match="simulated"):  # a named backend never falls back
        device.quantize_device(x, fmt, "nearest_even", "triton")


@settings(max_examples=10, deadline=None)  # the interpreter's ~1 s an example
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=24), st.sampled_from([1, 2, 5, 32]),
       st.sampled_from(lowprec.ROUNDING_MODES), st.sampled_from(["floor", "ceil", "rceil", "even"]), st.data())
def test_mx_random_shapes_axes_and_blocks(shape, block, mode, rule, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(-1e6, 1e6, width=32)))
    fmt = lowprec.BlockFormat("fp8_e5m2", block=block, rule=rule)
    expected = lowprec.quantize(x, fmt, mode, axis=axis, seed=3)
    got = lowprec.quantize(torch.from_numpy(x), fmt, mode, axis=axis, seed=3, backend="triton").numpy()
    assert_same(got, expected, f"{shape} axis={axis} block={block} {mode} {rule}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_nvfp4_every_mode_axis_and_scale_level(dtype, device):
    """Float-scaled blocks (NVFP4 with and without its per-tensor scale, an e8m0-free fp6 variant):
    every mode, blocks along the last, a middle and the first axis with a partial last block, a NaN
    block, an Inf, a zero block and tiny ones, rbits: the host path's bits."""
    x = torch.from_numpy(_blocked_inputs((4, 70, 5))).to(dtype)
    x[2, :, 0] *= 1e-30  # blocks whose scale reaches the smallest one
    formats = [lowprec.formats.get("nvfp4"), lowprec.BlockFormat("fp4_e2m1fn", block=16, scale="fp8_e4m3fn"),
               lowprec.BlockFormat("fp6_e3m2fn", block=7, scale="fp8_e5m2", tensor_scale=True)]
    for fmt in formats:
        for mode in lowprec.ROUNDING_MODES:
            for axis in ((1, -1, 0) if fmt.name == "nvfp4" else (1,)):
                expected = lowprec.quantize(x, fmt, mode, axis=axis, seed=9, backend="c")
                got = lowprec.quantize(x.to(device), fmt, mode, axis=axis, seed=9, backend="triton").cpu()
                assert_same(got.numpy(), expected.numpy(), f"{fmt} {mode} axis={axis}")
    expected = lowprec.quantize(x, "nvfp4", "stochastic", seed=4, rbits=6, backend="c")
    got = lowprec.quantize(x.to(device), "nvfp4", "stochastic", seed=4, rbits=6, backend="triton").cpu()
    assert_same(got.numpy(), expected.numpy(), "rbits=6")
    nan = torch.full((3, 32), float("nan"), dtype=dtype)  # no finite block: tensor scale 1
    assert_same(lowprec.quantize(nan.to(device), "nvfp4", backend="triton").cpu().numpy(), nan.numpy(), "all NaN")


def _ties(fmt, n):
    """Values on and next to the midpoints between an affine format's codes (its ties)."""
    k = RNG.integers(fmt.qmin - 3, fmt.qmax + 3, n).astype(np.float64) + 0.5 - np.asarray(fmt.zero_point).max()
    mid = (k * np.asarray(fmt.scale).max()).astype(np.float32)
    return np.concatenate([mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(-np.inf))])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_integer_affine_every_mode(dtype, device):
    """Integer affine per tensor and per channel (a middle and the first axis), signed, unsigned and
    narrow, 2 to 32 bits, every rounding mode: values at and beside every kind of tie, beyond the
    range, Inf, NaN, -0 and subnormals give the host path's bits."""
    formats = [lowprec.IntAffineFormat(8, 0.037, zero_point=3), lowprec.IntAffineFormat(2, 0.5),
               lowprec.IntAffineFormat(4, 0.1, zero_point=7, signed=False, narrow=True),
               lowprec.IntAffineFormat(32, 1e-6, zero_point=-5),
               lowprec.IntAffineFormat(6, np.linspace(0.01, 0.4, 5), zero_point=np.arange(-2, 3), axis=1),
               lowprec.IntAffineFormat(8, np.array([0.1, 0.3, 1.0 / 3, 7.0]), axis=0, signed=False,
                                       zero_point=np.array([0, 5, 128, 255]))]
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-40, 3e38, -3e38], np.float32)
    for fmt in formats:
        values = np.concatenate([specials, _ties(fmt, 100), random_floats(RNG, 400, np.float32, scale_exp=(-8, 8))])
        x = torch.from_numpy(values[: 4 * 5 * (values.size // 20)].reshape(4, 5, -1)).to(dtype)
        for mode in lowprec.ROUNDING_MODES:
            expected = lowprec.quantize(x, fmt, mode, seed=17, backend="c")
            got = lowprec.quantize(x.to(device), fmt, mode, seed=17, backend="triton").cpu()
            assert_same(got.numpy(), expected.numpy(), f"{fmt} {mode}")


@pytest.mark.parametrize("device", DEVICES)
def test_quotients_below_doubles_range_keep_their_sign(device):
    """x / scale below float64's smallest subnormal, directed up or down: an affine format and float
    scales (a huge tensor scale) give the host path's bits (the smallest subnormal, not 0, rounded)."""
    x = torch.tensor([5e-324, -5e-324, 1e-320, -1e-320, 0.0], dtype=torch.float64)
    blocks = torch.zeros(2, 16, dtype=torch.float64)
    blocks[0, 0], blocks[1, :4] = 1e300, x[:4]
    cases = [(x, lowprec.IntAffineFormat(8, 1e10)), (blocks, lowprec.BlockFormat("fp6_e3m2fn", block=16,
                                                                                 scale="fp8_e4m3fn", tensor_scale=True))]
    for arr, fmt in cases:
        for mode in ("up", "down"):
            expected = lowprec.quantize(arr, fmt, mode, backend="c")
            got = lowprec.quantize(arr.to(device), fmt, mode, backend="triton").cpu()
            assert_same(got.numpy(), expected.numpy(), f"{fmt} {mode}")
    assert lowprec.quantize(x[:1], lowprec.IntAffineFormat(8, 1e10), "up", backend="triton").item() == 1e10


def _around(points):
    """Each point and its float32 neighbours."""
    p = np.asarray(points, np.float32)
    return np.concatenate([p, np.nextafter(p, np.float32(np.inf)), np.nextafter(p, np.float32(-np.inf))])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_codebooks_every_mode(dtype, device):
    """LUT (per tensor; per channel along a middle and the first axis; 300 entries, past any scan) and
    log formats (log and linear domains, sqrt(2) base): every mode, inputs at and beside every entry
    and midpoint, beyond the ends, NaN and Inf: the host path's bits."""
    book = np.sort(RNG.standard_normal(300)) * 4
    formats = [lowprec.LUTFormat(np.array([-1.0, -0.25, 0.0, 0.5, 2.0])), lowprec.LUTFormat(book),
               lowprec.LUTFormat(np.sort(RNG.standard_normal((5, 6)), axis=1), axis=1),
               lowprec.LUTFormat(np.sort(RNG.standard_normal((4, 3)), axis=1), axis=0),
               lowprec.LogFormat(4), lowprec.LogFormat(5, k=2, fsr=1), lowprec.LogFormat(4, domain="linear")]
    for fmt in formats:
        entries = np.unique(fmt.codebook)
        points = np.concatenate([entries, (entries[1:] + entries[:-1]) / 2, np.sqrt(np.abs(entries[1:] * entries[:-1]))])
        values = np.concatenate([[np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30], _around(points),
                                 random_floats(RNG, 300, np.float32, scale_exp=(-6, 4))])
        n = values.size - values.size % 20
        x = torch.from_numpy(values[:n].astype(np.float32).reshape(4, 5, -1)).to(dtype)
        for mode in lowprec.formats.codebook.LUT_MODES:
            expected = lowprec.quantize(x, fmt, mode, seed=23, backend="c")
            got = lowprec.quantize(x.to(device), fmt, mode, seed=23, backend="triton").cpu()
            assert_same(got.numpy(), expected.numpy(), f"{fmt!r} {mode}")
    with pytest.raises(ValueError, match="x has 4 channels along axis 1"):
        lowprec.quantize(torch.zeros(2, 4), formats[2], backend="triton")
    with pytest.raises(ValueError, match="backend='torch' has no path"):
        lowprec.quantize(torch.zeros(3), formats[0], backend="torch")
