"""The array API: input kinds, layouts, out=, no writes to the caller's array, bad input."""

import numpy as np
import pytest

import lowprec

from helpers import assert_same


def test_python_float_and_numpy_scalars():
    assert lowprec.quantize(1.0 + 2**-12, "bf16") == 1.0
    assert isinstance(lowprec.quantize(0.1, "fp16"), float)
    assert lowprec.quantize(0.1, "fp16") == float(np.float16(0.1))  # float64 rounded once
    s = lowprec.quantize(np.float32(0.1), "fp16")
    assert isinstance(s, np.float32) and s == np.float32(np.float16(0.1))
    assert isinstance(lowprec.quantize(np.float64(3.3), "int8"), np.float64)
    assert lowprec.quantize(300, "int8") == 127.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_shape_and_layouts(dtype):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 8, 5)).astype(dtype)
    expected = lowprec.quantize(base.copy(), "fp8_e4m3fn")
    assert expected.dtype == dtype and expected.shape == base.shape
    for view in [base[:, ::2], base.transpose(2, 0, 1), base[::-1, :, ::-3], np.asfortranarray(base)]:
        before = view.copy()
        got = lowprec.quantize(view, "fp8_e4m3fn")
        assert got.shape == view.shape and got.dtype == dtype
        assert_same(got, lowprec.quantize(np.ascontiguousarray(view), "fp8_e4m3fn"))
        np.testing.assert_array_equal(view, before)  # input untouched
    swapped = base.astype(base.dtype.newbyteorder(">"))
    assert_same(lowprec.quantize(swapped, "fp8_e4m3fn"), expected)
    ro = base.copy()
    ro.flags.writeable = False
    assert_same(lowprec.quantize(ro, "fp8_e4m3fn"), expected)


def test_empty_and_zero_d():
    for shape in [(0,), (3, 0), ()]:
        x = np.zeros(shape, np.float32)
        q = lowprec.quantize(x, "fp16")
        assert q.shape == shape and q.dtype == np.float32
    assert lowprec.quantize(np.array(2.7, np.float64), "int4").shape == ()
    assert lowprec.encode(np.zeros(0, np.float32), "fp8_e5m2").shape == (0,)


def test_out_argument():
    x = np.linspace(-3, 3, 101).astype(np.float32)
    out = np.empty_like(x)
    assert lowprec.quantize(x, "fp4_e2m1fn", out=out) is out
    assert_same(out, lowprec.quantize(x, "fp4_e2m1fn"))
    y = x.copy()
    lowprec.quantize(y, "fp4_e2m1fn", out=y)  # in place
    assert_same(y, out)
    strided = np.zeros(202, np.float32)[::2]
    lowprec.quantize(x, "fp4_e2m1fn", out=strided)
    assert_same(strided, out)
    z = x.copy()
    lowprec.quantize(z[1:], "fp4_e2m1fn", out=z[:-1])  # overlapping but shifted
    assert_same(z[:-1], lowprec.quantize(x[1:], "fp4_e2m1fn"))
    with pytest.raises(ValueError, match="shape"):
        lowprec.quantize(x, "fp16", out=np.empty(3, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        lowprec.quantize(x, "fp16", out=np.empty_like(x, dtype=np.float64))
    ro = np.empty_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        lowprec.quantize(x, "fp16", out=ro)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stochastic_in_place_equals_out_of_place_with_tiny_inputs(dtype):
    # regression: the stochastic fix-up pass of tiny inputs once read the already-rounded output
    x = (np.random.default_rng(3).standard_normal(5000) * 2.0**-10).astype(dtype)
    expected = lowprec.quantize(x, "fp8_e4m3fn", "stochastic", seed=11)
    y = x.copy()
    lowprec.quantize(y, "fp8_e4m3fn", "stochastic", seed=11, out=y)
    assert_same(y, expected)
    assert (np.abs(expected) == 2.0**-9).any()  # some tiny inputs rounded up to the min subnormal


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    t = torch.randn(4, 6, dtype=torch.float32, requires_grad=True)
    q = lowprec.quantize(t, "fp8_e5m2")
    assert isinstance(q, torch.Tensor) and q.dtype == torch.float32 and q.shape == t.shape
    ref = t.detach().to(torch.float8_e5m2).to(torch.float32)
    assert torch.equal(q, ref)
    tt = t.detach().t()  # non-contiguous
    assert torch.equal(lowprec.quantize(tt, "fp8_e5m2"), ref.t())
    d = torch.randn(10, dtype=torch.float64)
    assert lowprec.quantize(d, "fp16").dtype == torch.float64
    out = torch.empty(10, dtype=torch.float64)
    assert lowprec.quantize(d, "fp16", out=out) is out
    assert torch.equal(out, lowprec.quantize(d, "fp16"))
    codes = lowprec.encode(t.detach(), "fp8_e4m3fn")
    assert codes.dtype == torch.uint8
    assert torch.equal(lowprec.decode(codes, "fp8_e4m3fn"), lowprec.quantize(t, "fp8_e4m3fn"))
    with pytest.raises(TypeError, match="float32 or float64"):
        lowprec.quantize(torch.ones(3, dtype=torch.int32), "fp16")


@pytest.mark.parametrize("bad", [np.arange(4), np.ones(3, complex), np.array(["a"]), np.array([object()]),
                                 np.ones(2, bool), np.ones(2, np.longdouble)])
def test_non_float_arrays_raise_type_error(bad):
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        lowprec.quantize(bad, "fp16")


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_numpy_half_arrays_in_and_out(half):
    """numpy float16 arrays (and ml_dtypes' bfloat16) are read exactly through float32 and, where the
    format's values fit their dtype, written in it: the float32 path's values bit for bit, NaN signs
    and -0 included, in every mode; a format they cannot hold raises TypeError naming the remedy;
    encode, decode and the MAC take them as float32."""
    dtype = np.dtype(np.float16) if half == "float16" else np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    rng = np.random.default_rng(17)
    x = (rng.standard_normal(4000) * 2.0 ** rng.integers(-12, 12, 4000)).astype(dtype)
    x[:6] = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0]).astype(dtype)
    wide, before = x.astype(np.float32), x.copy()
    for fmt in ("fp8_e4m3fn", "fp8_e5m2", "fp4_e2m1fn", "q4.3", {"float16": "fp16", "bfloat16": "bf16"}[half]):
        for mode in ("nearest_even", "stochastic", "down"):
            got = lowprec.quantize(x, fmt, mode, seed=3)
            want = lowprec.quantize(wide, fmt, mode, seed=3)
            assert got.dtype == dtype, (fmt, mode)
            assert np.array_equal(got.astype(np.float32).view(np.uint32), want.view(np.uint32)), (fmt, mode)
    blocks = (np.abs(wide[6:3974].reshape(-1, 32)) + 1.0).astype(dtype)  # block values within float16's range
    got = lowprec.quantize(blocks, "mxfp8_e4m3")
    want = lowprec.quantize(blocks.astype(np.float32), "mxfp8_e4m3")
    assert got.dtype == dtype and np.array_equal(got.astype(np.float32), want)
    scalar = lowprec.quantize(x[10], "fp8_e4m3fn")
    assert isinstance(scalar, np.generic) and scalar.dtype == dtype and scalar == lowprec.quantize(wide[10], "fp8_e4m3fn")
    out = np.empty_like(x)
    assert lowprec.quantize(x, "fp8_e4m3fn", out=out) is out
    assert np.array_equal(out.astype(np.float32), lowprec.quantize(wide, "fp8_e4m3fn"), equal_nan=True)
    with pytest.raises(TypeError, match="out must be a numpy array of x's shape and dtype"):
        lowprec.quantize(x, "fp8_e4m3fn", out=np.empty(x.shape, np.float32))
    other = "bf16" if half == "float16" else "fp16"
    with pytest.raises(TypeError, match=rf"{half} array and '{other}' has values {half} cannot hold.*astype\(np.float32\)"):
        lowprec.quantize(x, other)
    with pytest.raises(TypeError, match="not all"):  # codebook entries the dtype cannot hold
        lowprec.quantize(x, lowprec.LUTFormat([0.1, 0.7]))
    finite = np.where(np.isfinite(wide), wide, 0.0).astype(dtype)
    codes = lowprec.encode(finite, "fp8_e4m3fn")
    assert np.array_equal(codes, lowprec.encode(finite.astype(np.float32), "fp8_e4m3fn"))
    a, b = finite[:60].reshape(6, 10), finite[60:140].reshape(10, 8)
    mac = lowprec.MAC(acc="fp32")
    got = mac.matmul(a, b)
    assert got.dtype == np.float32 and np.array_equal(got, mac.matmul(a.astype(np.float32), b.astype(np.float32)))
    assert np.array_equal(x.view(np.uint16), before.view(np.uint16))  # the caller's array untouched


def test_bad_parameters_raise_value_error():
    x = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="rounding must be one of"):
        lowprec.quantize(x, "fp16", "nearest")
    with pytest.raises(ValueError, match="rbits"):
        lowprec.quantize(x, "fp16", "stochastic", rbits=0)
    with pytest.raises(ValueError, match="rbits"):
        lowprec.quantize(x, "fp16", "stochastic", rbits=65)
    with pytest.raises(ValueError, match="seed"):
        lowprec.quantize(x, "fp16", "stochastic", seed=-1)
    with pytest.raises(ValueError, match="unknown format name 'fp17'"):
        lowprec.quantize(x, "fp17")
    with pytest.raises(ValueError, match="nan must be"):
        lowprec.quantize(x, "fp16", nan="ignore")
    with pytest.raises(TypeError):
        lowprec.quantize(None, "fp16")
    with pytest.raises(ValueError, match=r"codes must be in \[0, 2\*\*8\)"):
        lowprec.decode(np.array([256]), "fp8_e4m3fn")
    with pytest.raises(TypeError, match="integer"):
        lowprec.decode(np.array([1.0]), "fp8_e4m3fn")
    with pytest.raises(ValueError, match="n must be"):
        lowprec.set_num_threads(0)


def test_nan_inf_and_negative_zero_conventions():
    x = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0, 1e9, -1e9], np.float32)
    e4 = lowprec.quantize(x, "fp8_e4m3fn")
    assert np.isnan(e4[[0, 1, 2, 3, 5, 6]]).all() and np.signbit(e4[4])
    e5 = lowprec.quantize(x, "fp8_e5m2")
    np.testing.assert_array_equal(e5[2:], [np.inf, -np.inf, -0.0, np.inf, -np.inf])
    uz = lowprec.quantize(x, "fp8_e4m3fnuz")
    assert not np.signbit(uz[4])  # no -0
    fp4 = lowprec.quantize(x, "fp4_e2m1fn")
    np.testing.assert_array_equal(fp4[2:], [6, -6, 0, 6, -6])
    assert fp4[0] == 0 and np.signbit(fp4[0]) and not np.signbit(fp4[1])  # ml_dtypes' NaN convention
    with pytest.raises(ValueError, match="NaN"):
        lowprec.quantize(x, "fp4_e2m1fn", nan="raise")
    with pytest.raises(ValueError, match="NaN"):
        lowprec.quantize(x, "int8", nan="raise")
    i8 = lowprec.quantize(x, "int8")
    np.testing.assert_array_equal(i8, [0, 0, 127, -128, 0, 127, -128])
    assert not np.signbit(i8[4])
    sat = lowprec.FloatFormat(5, 2, overflow="saturate")
    np.testing.assert_array_equal(lowprec.quantize(x[2:4], sat), [57344, -57344])


def test_directed_overflow_follows_ieee():
    x = np.array([1e6, -1e6], np.float32)
    np.testing.assert_array_equal(lowprec.quantize(x, "fp16", "toward_zero"), [65504, -65504])
    np.testing.assert_array_equal(lowprec.quantize(x, "fp16", "up"), [np.inf, -65504])
    np.testing.assert_array_equal(lowprec.quantize(x, "fp16", "down"), [65504, -np.inf])


def test_formats_wider_than_the_input_dtype():
    x = np.array([3.0e9, -3.0e9, 1.5], np.float32)
    q = lowprec.quantize(x, "int32")
    assert q[0] == np.float32(2**31 - 128) and q[1] == -(2.0**31) and q[2] == 2.0
    x64 = np.array([1 / 3], np.float64)
    assert lowprec.quantize(x64, "fp64") == x64[0]
    assert lowprec.quantize(np.float32(1 / 3), "fp64") == np.float32(1 / 3)
    assert lowprec.formats.get("fp64").decode(np.array([0x3FF0000000000001], np.uint64))[0] == 1 + 2**-52


def test_wrap_around_integers():
    wrap8 = lowprec.FixedFormat(8, 0, overflow="wrap")
    np.testing.assert_array_equal(lowprec.quantize(np.array([128.0, 255, 256, -129, -300.4]), wrap8),
                                  [-128, -1, 0, 127, -44])
    np.testing.assert_array_equal(lowprec.encode(np.array([-1.0, -128, 127]), wrap8), [255, 128, 127])


def test_encode_layouts():
    assert lowprec.encode(1.0, "fp16") == 0x3C00
    assert lowprec.encode(-2.0, "bf16") == 0xC000
    assert lowprec.encode(448.0, "fp8_e4m3fn") == 0x7E
    assert lowprec.encode(float("nan"), "fp8_e4m3fnuz") == 0x80
    assert lowprec.encode(1.0, "tf32") == 127 << 10
    assert lowprec.formats.get("tf32").code_dtype == np.uint32
    assert lowprec.encode(-1.0, "q1.7") == 0x80 and lowprec.encode(0.5, "q1.7") == 0x40
    assert lowprec.encode(-1.0, "int4") == 0xF


def test_thread_count_setting():
    lowprec.set_num_threads(1)
    assert lowprec.get_num_threads() == 1
    lowprec.set_num_threads(None)
    assert lowprec.get_num_threads() >= 1


@pytest.mark.large
def test_more_than_2_31_elements():
    n = 2**31 + 17
    x = np.full(n, 1.0 + 2**-11, np.float32)
    x[-1] = 3.3
    q = lowprec.quantize(x, "fp16", out=x)
    assert q[0] == 1.0 and q[-1] == np.float32(np.float16(3.3)) and q[n // 2] == 1.0


def test_fp32_and_fp64_codes_are_the_ieee_bit_patterns():
    rng = np.random.default_rng(5)
    x32 = rng.integers(0, 2**32, 4096, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x32 = x32[np.isfinite(x32)]
    np.testing.assert_array_equal(lowprec.encode(x32, "fp32"), x32.view(np.uint32))
    assert_same(lowprec.decode(x32.view(np.uint32), "fp32"), x32)
    x64 = rng.standard_normal(4096) * 10.0 ** rng.integers(-300, 300, 4096)
    np.testing.assert_array_equal(lowprec.encode(x64, "fp64"), x64.view(np.uint64))
    assert_same(lowprec.decode(x64.view(np.uint64), "fp64"), x64)
    t = lowprec.quantize(x32, "tf32")
    assert_same(lowprec.decode(lowprec.encode(x32, "tf32"), "tf32"), t)
    np.testing.assert_array_equal(t.view(np.uint32) & 0x1FFF, 0)  # 13 low mantissa bits dropped


def test_concurrent_calls_from_python_threads_agree_with_sequential_ones():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(8)
    xs = [rng.standard_normal(200_000).astype(np.float32) for _ in range(8)]
    jobs = [(x, name, mode) for x in xs for name, mode in [("fp8_e4m3fn", "stochastic"), ("bf16", "nearest_even")]]
    sequential = [lowprec.quantize(x, name, mode, seed=3) for x, name, mode in jobs]
    with ThreadPoolExecutor(4) as pool:  # the C core runs without the GIL
        concurrent = list(pool.map(lambda job: lowprec.quantize(job[0], job[1], job[2], seed=3), jobs))
    for a, b in zip(sequential, concurrent):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
