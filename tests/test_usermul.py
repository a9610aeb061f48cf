"""User multipliers in the MAC (numba): product tables and compiled functions against the C engine and
integer arithmetic, the approximate multipliers against their papers' definitions, bad input."""

import json

import numpy as np
import pytest

pytest.importorskip("numba")

import lowprec  # noqa: E402
from lowprec import MAC, cost  # noqa: E402
from lowprec.mac import approx  # noqa: E402


def _fp8_values():
    return np.asarray(lowprec.decode(np.arange(256, dtype=np.uint8), "fp8_e4m3fn"), np.float64)


def test_an_exact_table_is_the_integer_matmul_and_integer_accumulators_follow_their_formats():
    rng = np.random.default_rng(0)
    A = rng.integers(-128, 128, (9, 70)).astype(np.float32)
    B = rng.integers(-128, 128, (70, 5)).astype(np.float32)
    exact = approx.table("exact", 8)
    mac = MAC(mul=exact, inputs=("int8", "int8"), acc="int32")
    assert np.array_equal(mac.matmul(A, B), A.astype(np.int64) @ B.astype(np.int64))
    assert mac.counts["mul"] == {"lut8x8": 9 * 5 * 70} and mac.counts["overflows"] == 0
    assert cost.report(mac.counts, skip_zeros=False).total_pj > 0  # priced as table reads
    # int16 saturates as lowprec's format says, a wrapping int16 wraps: the C engine's sums and overflow counts
    wrap16 = lowprec.FixedFormat(16, 0, overflow="wrap")
    for acc in ("int16", wrap16):
        user, engine = MAC(mul=exact, inputs=("int8", "int8"), acc=acc), MAC(acc=acc, inputs=("int8", "int8"))
        got, want = user.matmul(A, B), engine.matmul(A, B)
        assert np.array_equal(got, want) and not np.array_equal(got, A.astype(np.int64) @ B.astype(np.int64))
        assert user.counts["overflows"] == engine.counts["overflows"] > 0
    big = np.full((256, 256), 2.0**30)  # every product 2**30: an int32 saturates, a wrapping one wraps
    ones = np.ones((1, 5), np.float32), np.ones((5, 1), np.float32)
    assert MAC(mul=big, inputs=("int8", "int8"), acc="int32").matmul(*ones)[0, 0] == 2**31 - 1
    wrapping = MAC(mul=big, inputs=("int8", "int8"), acc=lowprec.FixedFormat(32, 0, overflow="wrap"))
    assert wrapping.matmul(*ones)[0, 0] == np.int64(5 * 2**30).astype(np.int32)  # 5 * 2**30 - 2**32
    assert wrapping.counts["overflows"] == 1  # the 2nd sum passes 2**31 - 1 (to -2**31), the rest climb back


def test_a_table_in_chunks_is_the_c_engine_s_chunked_sums():
    """Chunks of 16 products in fp32, the chunk sums in fp32 one after another: the C engine's bits;
    fp64 chunk sums: the fp32 chunk sums added exactly."""
    rng = np.random.default_rng(5)
    v = _fp8_values()
    A = lowprec.quantize(rng.standard_normal((8, 300)).astype(np.float32), "fp8_e4m3fn")
    B = lowprec.quantize(rng.standard_normal((300, 5)).astype(np.float32), "fp8_e4m3fn")
    table = np.outer(v, v)
    mac = MAC(mul=table, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp32", chunk=16, chunk_acc="fp32")
    assert np.array_equal(mac.matmul(A, B), MAC(acc="fp32", chunk=16, chunk_acc="fp32").matmul(A, B))
    assert mac.counts["add"]["fp32"] == 8 * 5 * (300 + 19)  # every product, then 19 chunk sums
    wide = MAC(mul=table, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp32", chunk=7, chunk_acc="fp64")
    parts = sum(MAC(acc="fp32").matmul(A[:, s:s + 7], B[s:s + 7]) for s in range(0, 300, 7))
    assert np.array_equal(wide.matmul(A, B), parts)
    Ai = rng.integers(-128, 128, (4, 100)).astype(np.float32)
    Bi = rng.integers(-128, 128, (100, 3)).astype(np.float32)
    ints = MAC(mul=approx.table("exact", 8), inputs=("int8", "int8"), acc="int32", chunk=10, chunk_acc="int32")
    assert np.array_equal(ints.matmul(Ai, Bi), Ai.astype(np.int64) @ Bi.astype(np.int64))


def test_an_fp8_table_and_a_compiled_function_are_the_c_engine_s_fp32_sums():
    rng = np.random.default_rng(1)
    A = lowprec.quantize(rng.standard_normal((12, 300)).astype(np.float32), "fp8_e4m3fn")
    B = lowprec.quantize(rng.standard_normal((300, 7)).astype(np.float32), "fp8_e4m3fn")
    reference = MAC(acc="fp32").matmul(A, B)  # exact products, every sum rounded to fp32, in k order
    v = _fp8_values()
    table = MAC(mul=np.outer(v, v), inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp32")
    assert np.array_equal(table.matmul(A, B), reference)
    import numba

    @numba.njit
    def exact(a, b):
        return a * b

    assert np.array_equal(MAC(mul=exact, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp32").matmul(A, B), reference)
    # Mitchell as a function and as the table of its products agree
    mt = np.array([[approx.mitchell_fp(x, y) if np.isfinite(x * y) else 0.0 for y in v] for x in v])
    by_fn = MAC(mul=approx.mitchell_fp, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp32").matmul(A, B)
    assert np.array_equal(by_fn, MAC(mul=mt, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp32").matmul(A, B))
    assert not np.array_equal(by_fn, reference)


def test_approximate_multipliers_follow_their_definitions():
    # Mitchell: 3 x 3 = 2**3 (0.5 + 0.5) = 8, its worst case 8/9 of the product; never above; powers of 2 exact
    assert approx.mitchell(3, 3) == 8.0
    a, b = np.meshgrid(np.arange(1, 256), np.arange(1, 256))
    ratio = approx.mitchell(a, b) / (a * b)
    assert ratio.max() == 1.0 and ratio.min() == pytest.approx(8 / 9)
    assert np.array_equal(approx.mitchell(a, 64), a * 64.0)
    assert approx.mitchell_fp(3.0, -3.0) == -8.0 and approx.mitchell_fp(0.75, 1.5) == 1.0  # 2**-1 (1.5) * 2**0 (1.5)
    # truncated: 3 x 3 without column 0 (1 x 1) is 8; cut=0 exact
    assert approx.truncated(3, 3, 8, 1) == 8 and np.array_equal(approx.truncated(a, b, 8, 0), a * b)
    # broken-array: no rows, no columns broken is exact; hbl=0 is the truncated multiplier; rows below hbl
    # dropped are the multiplier's low bits cleared; 7 x 7 with vbl=2, hbl=1 keeps a_i b_j (j >= 1, i + j >= 2)
    assert np.array_equal(approx.broken_array(a, b, 8, 0), a * b)
    assert np.array_equal(approx.broken_array(a, b, 8, 5), approx.truncated(a, b, 8, 5))
    assert np.array_equal(approx.broken_array(a, b, 8, 0, hbl=3), a * (b & ~7))
    assert approx.broken_array(7, 7, 3, vbl=2, hbl=1) == 4 + 4 + 8 + 8 + 16  # (0,2) (1,1) (1,2) (2,1) (2,2)
    assert approx.table("broken_array", 4, vbl=3, hbl=1)[5, 5] == approx.broken_array(5, 5, 4, 3, 1)
    # DRUM: 183 = 1011 0111 keeps 1011 (its lowest bit set), shifted back: 176; exact below 2**k
    assert approx.drum(183, 1, 4) == 176 and approx.drum(0b10100000, 1, 4) == 0b10110000
    small = np.arange(16)
    assert np.array_equal(approx.drum(small[:, None], small[None, :], 4), small[:, None] * small[None, :])
    t = approx.table("mitchell", 8)
    v = approx._magnitudes(8)
    assert t[3, 3] == 8 and t[(-3) % 256, 3] == -8 and t.shape == (256, 256)
    assert np.all(np.abs(t) <= np.abs(np.outer(v, v)))


def test_tables_from_npy_files_and_c_headers(tmp_path):
    t = approx.table("drum", 4, k=2)
    np.save(tmp_path / "drum.npy", t)
    body = ",\n".join("  {" + ", ".join(f"{int(x)}" for x in row) + "}" for row in t)
    (tmp_path / "drum.h").write_text("// DRUM k=2, 4x4 bits\n/* exported */\nconst int16_t drum4[16][16] = {\n"
                                     + body + "\n};\n")
    A = np.float32([[3, -5, 7, 1]])
    B = np.float32([[2], [6], [-7], [5]])
    direct = MAC(mul=t, inputs=("int4", "int4"), acc="int32").matmul(A, B)
    for source in (tmp_path / "drum.npy", str(tmp_path / "drum.h")):
        assert np.array_equal(MAC(mul=source, inputs=("int4", "int4"), acc="int32").matmul(A, B), direct)
    (tmp_path / "short.h").write_text("const int t[2] = {1, 2};")
    with pytest.raises(ValueError, match="the array holds 2 numbers; inputs int4 x int4 need 16 x 16"):
        MAC(mul=str(tmp_path / "short.h"), inputs=("int4", "int4"), acc="int32")


def test_bad_input():
    import numba

    with pytest.raises(ValueError, match=r"product table has shape \(16, 16\); inputs int8 x int8 need \(256, 256\)"):
        MAC(mul=np.zeros((16, 16)), inputs=("int8", "int8"), acc="int32")
    nan = np.zeros((256, 256))
    nan[1, 1] = np.nan
    with pytest.raises(ValueError, match="product table holds NaN, which neither int8 nor int8 has"):
        MAC(mul=nan, inputs=("int8", "int8"), acc="int32")
    with pytest.raises(ValueError, match="a user multiplier needs inputs="):
        MAC(mul=approx.table("exact", 8), acc="int32")
    with pytest.raises(ValueError, match="leave unit and fused at their defaults"):
        MAC(mul=approx.table("exact", 8), inputs=("int8", "int8"), acc="int32", fused=True)
    with pytest.raises(ValueError, match="fp64 is too wide for the MAC simulator"):  # fp64: compiled sums only
        MAC(mul=approx.mitchell_fp, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp64", chunk=16)
    with pytest.raises(ValueError, match="leave chunk, chunk_acc, order, rounding and out at their defaults"):
        MAC(acc=approx.mitchell_fp, order="kahan")

    @numba.njit
    def wide(a, b):
        return a * b * (1.0 + 2.0**-40)

    A8 = np.full((2, 3), 1.5, np.float32)
    with pytest.raises(ValueError, match="mul=user:wide: its products have 44 significant bits"):
        MAC(mul=wide, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp16").matmul(A8, A8.T)

    def not_compilable(a, b):
        return float(json.loads(json.dumps(a))) * b  # json: a module numba cannot compile

    A = np.ones((2, 3), np.float32)
    mac = MAC(mul=not_compilable, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp32")
    with pytest.raises(ValueError, match="mul=not_compilable: numba cannot compile it .*allow_python=True"):
        mac.matmul(A, A.T)
    slow = MAC(mul=not_compilable, inputs=("fp8_e4m3fn", "fp8_e4m3fn"), acc="fp32", allow_python=True)
    assert np.array_equal(slow.matmul(A, A.T), np.full((2, 2), 3.0))


def test_layers_train_straight_through_an_approximate_multiplier():
    """Forward through the table, backward with exact products (AdaPT): emulate and swap alike."""
    import torch

    from lowprec import nn as lnn

    torch.manual_seed(0)
    table = approx.table("mitchell", 8)
    lin = torch.nn.Linear(6, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.randint(-20, 20, (3, 6)).float())
    x = torch.randint(-20, 20, (4, 6)).float().requires_grad_()
    mac = {"mode": "mac", "mul": table, "acc": "int32"}
    lnn.emulate(lin, {"linear": {"input": "int8", "weight": "int8", "mac": mac}})
    y = lin(x)
    expected = MAC(mul=table, inputs=("int8", "int8"), acc="int32").matmul(x.detach().numpy(), lin.weight.detach().numpy().T)
    assert np.array_equal(y.detach().numpy(), expected)
    assert not np.array_equal(expected, x.detach().numpy() @ lin.weight.detach().numpy().T)
    g = torch.randint(-3, 3, (4, 3)).float()
    y.backward(g)
    assert torch.equal(x.grad, g @ lin.weight.detach())  # exact products backward
    swapped = torch.nn.Sequential(torch.nn.Linear(6, 3, bias=False))
    with torch.no_grad():
        swapped[0].weight.copy_(lin.weight)
    lnn.swap(swapped, {"Linear": {"input": "int8", "weight": "int8", "mac": mac}})
    x2 = x.detach().clone().requires_grad_()
    y2 = swapped(x2)
    assert torch.equal(y2, y)
    y2.backward(g)
    assert torch.equal(x2.grad, x.grad)


def test_a_user_accumulator_is_the_c_engine_s_when_it_rounds_the_same():
    """s' = (s + p) truncated to 8 significant bits, written out on float64's bits, against the C
    engine's bf16 accumulator rounding toward zero (every value here in bf16's normal range)."""
    import numba

    @numba.njit
    def bf16_toward_zero(s, p):
        v = s + p  # exact in float64: bf16 + a product of fp8 values
        bits = np.array([v]).view(np.uint64)[0] & np.uint64(0xFFFFE00000000000)  # keep 7 fraction bits
        return np.array([bits]).view(np.float64)[0]

    rng = np.random.default_rng(3)
    A = lowprec.quantize(rng.standard_normal((6, 200)), "fp8_e4m3fn")
    B = lowprec.quantize(rng.standard_normal((200, 4)), "fp8_e4m3fn")
    mac = MAC(acc=bf16_toward_zero)
    got = mac.matmul(A, B)
    assert np.array_equal(got, MAC(acc="bf16", rounding="toward_zero").matmul(A, B))
    assert mac.counts["add"] == {"user:bf16_toward_zero": 6 * 4 * 200}
    both = MAC(mul=approx.mitchell_fp, acc=bf16_toward_zero, inputs=("fp8_e4m3fn", "fp8_e4m3fn"))
    assert not np.array_equal(both.matmul(A, B), got)  # Mitchell's products through the same sums
    with pytest.raises(ValueError, match="a user accumulator takes exact products"):
        MAC(mul=approx.table("exact", 8), acc=bf16_toward_zero, inputs=("int8", "int8"))


def test_a_user_rounding_rule_in_quantize():
    """Round-to-nearest, ties away, written as a rule: lowprec's nearest_away, overflow and specials too."""
    import numba
    import torch

    @numba.njit
    def nearest_away(x, lo, hi):
        dl, dh = x - lo, hi - x
        if dl < dh:
            return lo
        if dh < dl:
            return hi
        return hi if x > 0 else lo

    rng = np.random.default_rng(4)
    x = (rng.standard_normal(50000) * 2.0 ** rng.integers(-12, 12, 50000)).astype(np.float32)
    x[:6] = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e30]
    for fmt in ("fp8_e4m3fn", "fp8_e5m2", "bf16", "q3.4", lowprec.FloatFormat(exp_bits=4, man_bits=3, specials="fn",
                                                                               overflow="saturate")):
        got, want = lowprec.quantize(x, fmt, nearest_away), lowprec.quantize(x, fmt, "nearest_away")
        assert np.array_equal(got, want, equal_nan=True) and np.signbit(got[4]) == np.signbit(want[4]), fmt
    t = torch.from_numpy(x[6:])
    assert torch.equal(lowprec.quantize(t, "bf16", nearest_away), lowprec.quantize(t, "bf16", "nearest_away"))

    @numba.njit
    def halfway(x, lo, hi):
        return (lo + hi) / 2

    with pytest.raises(ValueError, match="rounding=halfway returned .* not one of its neighbours"):
        lowprec.quantize(np.float32([0.3]), "bf16", halfway)
    with pytest.raises(ValueError, match="a rounding function applies to float and fixed-point formats"):
        lowprec.quantize(np.ones(32, np.float32), "mxfp8_e4m3", nearest_away)
    with pytest.raises(ValueError, match="rbits"):
        lowprec.quantize(np.ones(4, np.float32), "bf16", nearest_away, rbits=8)


def _fp8_operands(seed, m, k, n):
    rng = np.random.default_rng(seed)
    return (lowprec.quantize(rng.standard_normal((m, k)).astype(np.float32), "fp8_e4m3fn"),
            lowprec.quantize(rng.standard_normal((k, n)).astype(np.float32), "fp8_e4m3fn"))


@pytest.mark.parametrize("settings", [
    {"acc": "fp16"}, {"acc": "bf16", "rounding": "toward_zero"}, {"acc": "fp16", "order": "pairwise"},
    {"acc": "fp16", "order": "kahan"}, {"acc": "fp16", "chunk": 32, "chunk_acc": "fp32"},
    {"acc": "fp16", "rounding": "stochastic", "seed": 7, "rbits": 8}, {"acc": "fp32", "out": "bf16"},
    {"acc": None}, {"acc": "q8.6"}, {"acc": "fp32", "rounding": "up"}])
def test_user_products_follow_every_accumulation_rule_as_exact_products_do(settings):
    """An exact product table and an exact function give the C engine's bits, counts and overflows in
    every configuration (the products' sums through the engine), over two calls (stochastic offsets)."""
    import numba

    @numba.njit
    def exact(a, b):
        return a * b

    A, B = _fp8_operands(11, 9, 300, 5)
    v = _fp8_values()
    engine = MAC(**settings, inputs="fp8_e4m3fn")
    want = [engine.matmul(A, B), engine.matmul(A[:3], B)]
    for mul in (np.outer(v, v), exact):
        user = MAC(mul=mul, **settings, inputs="fp8_e4m3fn")
        got = [user.matmul(A, B), user.matmul(A[:3], B)]
        assert all(np.array_equal(g, w, equal_nan=True) for g, w in zip(got, want)), mul
        label = "lut8x8" if isinstance(mul, np.ndarray) else "user:exact"
        assert dict(user.counts["mul"]) == {label: 12 * 5 * 300}
        for key in ("add", "round", "overflows", "zero_products", "bits_read", "elements_written"):
            assert user.counts[key] == engine.counts[key], key


def test_an_initial_accumulator_with_a_user_multiplier():
    A, B = _fp8_operands(12, 4, 50, 3)
    c = lowprec.quantize(np.arange(12, dtype=np.float32).reshape(4, 3) / 3, "fp32")
    user = MAC(mul=approx.mitchell_fp, inputs="fp8_e4m3fn", acc="fp32")
    mt = np.array([[approx.mitchell_fp(x, y) if np.isfinite(x * y) else 0.0 for y in _fp8_values()]
                   for x in _fp8_values()])
    table = MAC(mul=mt, inputs="fp8_e4m3fn", acc="fp32")
    assert np.array_equal(user.matmul(A, B, c), table.matmul(A, B, c))
    assert not np.array_equal(user.matmul(A, B, c), user.matmul(A, B))


def naive_fp32_sums(A, B, mul):
    out = np.empty((A.shape[0], B.shape[1]), np.float32)
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            s = np.float32(0)
            for t in range(A.shape[1]):
                s = np.float32(np.float64(s) + mul(A[i, t], B[t, j]))
            out[i, j] = s
    return out


def test_fp32_sums_of_wide_products_round_once():
    """Products of 40-odd bits into fp32: every step the exact s + p rounded to nearest even once (the
    float64 sum alone would round twice), against exact rationals; ties made on purpose."""
    from fractions import Fraction

    import numba

    from lowprec._exact import rto64

    @numba.njit
    def wide(a, b):
        return a * b * (1.0 + 2.0**-30)

    rng = np.random.default_rng(13)
    A = (rng.integers(1, 2**12, (6, 400)) * rng.choice([-1.0, 1.0], (6, 400))).astype(np.float32)
    B = rng.integers(1, 2**10, (400, 3)).astype(np.float32) * np.float32(2.0**-9)
    # s = 2**24 first, then p = 1 + 2**-30: float64's s + p is 2**24 + 1, a float32 tie (to 2**24), the
    # exact sum lies above it (2**24 + 2)
    A[:, :2], B[:2] = 1.0, 1.0
    A[:, 0] = 2.0**24
    got = MAC(mul=wide, inputs="fp32", acc="fp32").matmul(A, B)
    want = np.empty_like(got)
    for i in range(6):
        for j in range(3):
            s = np.float32(0)
            for t in range(400):
                p = Fraction(float(A[i, t]) * float(B[t, j])) * (1 + Fraction(1, 2**30))
                s = np.float32(rto64(Fraction(float(s)) + Fraction(float(wide(A[i, t], B[t, j])))))
                assert Fraction(float(wide(A[i, t], B[t, j]))) == p  # the product itself exact in float64
            want[i, j] = s
    assert np.array_equal(got, want)
    assert (want == naive_fp32_sums(A, B, wide)).mean() < 1  # the case is not vacuous
    from lowprec.mac.usermul import _FUNCTION_TEMPLATE
    from lowprec.kernels import jit
    add32 = jit.python_module(_FUNCTION_TEMPLATE, {"_mul": wide}).add32
    tie = 2.0**24 + 1.0  # halfway between float32 2**24 and 2**24 + 2
    assert add32(np.float32(2.0**24), 1.0 + 2.0**-40) == np.float32(2.0**24 + 2)  # float64 sum: the tie
    assert add32(np.float32(2.0**24), 1.0 - 2.0**-40) == np.float32(2.0**24)
    assert np.float32(np.float64(2.0**24) + (1.0 + 2.0**-40)) == np.float32(tie)  # what one rounding misses
    top = 3.4028235677973366e38  # halfway between the largest float32 and 2**128
    assert add32(np.float32(3.4028234663852886e38), top - 3.4028234663852886e38 - 2.0**50) == np.float32(3.4028234663852886e38)


def test_kernels_for_a_function_are_cached_on_disk(tmp_path):
    """A second process loads the kernel numba compiled for the same function; an edited function
    gets a new fingerprint (never a stale kernel)."""
    import subprocess
    import sys
    import textwrap

    from lowprec.kernels import jit

    script = tmp_path / "user_mul.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        import lowprec
        from lowprec.kernels import jit

        def scaled(a, b):
            return a * b * SCALE

        SCALE = 0.5
        mac = lowprec.MAC(mul=scaled, inputs="fp8_e4m3fn", acc="fp32")
        print(mac.matmul(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32))[0, 0])
        module = next(iter(jit._MODULES.values()))
        print(sum(module.sum32.stats.cache_hits.values()), sum(module.sum32.stats.cache_misses.values()))
    """))
    env = {**__import__("os").environ, "LOWPREC_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=True).stdout.split()
            for _ in range(2)]
    assert runs[0] == ["1.5", "0", "1"] and runs[1] == ["1.5", "1", "0"]
    assert len(list((tmp_path / "cache" / "numba").glob("lowprec_jit_*.py"))) == 1

    def f(a, b):
        return a * b

    first = jit.fingerprint(f)
    f.__code__ = (lambda a, b: a * b * 2.0).__code__
    assert jit.fingerprint(f) != first is not None
    scale = 2.0
    g = lambda a, b: a * b * scale  # noqa: E731  (a closure: its cell is part of the print)
    before = jit.fingerprint(g)
    scale = 3.0
    assert jit.fingerprint(g) != before
    assert jit.fingerprint(lambda a, b: a * object()) is not None  # names a builtin: fine
    holder = object()
    assert jit.fingerprint(lambda a, b: a * b * holder.x) is None  # an unknown object: no disk cache


def test_user_multipliers_are_priced_as_what_they_are_built_from():
    """cost.report and cost.profile price a user multiplier by mul_as (no cost-table row of its own);
    without it, report refuses rather than counting the products as free."""
    import torch

    A, B = _fp8_operands(14, 3, 20, 2)
    mac = MAC(mul=approx.mitchell_fp, inputs="fp8_e4m3fn", acc="fp32")
    mac.matmul(A, B)
    with pytest.raises(ValueError, match=r"user multiplier \(user:_mitchell_fp\) have no row.*mul_as="):
        cost.report(mac.counts)
    priced = cost.report(mac.counts, mul_as={"user:_mitchell_fp": ("add", "int8")})
    line = next(line for line in priced.lines if line[0] == "mul user:_mitchell_fp")
    assert line[1] == 3 * 2 * 20 and line[2] == cost.energy("add", lowprec.formats.get("int8"))
    model = torch.nn.Sequential(torch.nn.Linear(20, 4))
    x = torch.randn(1, 20)
    base = {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "acc": "fp32"}
    exact, log = (cost.profile(model, x, dict(base, **extra)) for extra in ({}, {"mul_as": ("add", "int8")}))
    assert log.layers[0].mul == "fp8_e4m3fn x fp8_e4m3fn as add int8"
    saved = 80 * (cost.energy("mul", lowprec.formats.get("fp8_e4m3fn")) - cost.energy("add", lowprec.formats.get("int8")))
    assert exact.total("compute_pj") - log.total("compute_pj") == pytest.approx(saved)
    with pytest.raises(ValueError, match="mul_as must be \\(op, format\\)"):
        cost.profile(model, x, dict(base, mul_as="int8"))


def test_the_accuracy_study_s_mitchell_row_keeps_settings_stable_across_processes():
    """--resume compares settings: a function in a preset prints by name, never by address."""
    from lowprec.sims import accuracy

    preset = json.dumps(accuracy.settings("fp8-mitchell", 1, 0, None)["preset"])
    assert "function:lowprec.mac.approx._mitchell_fp" in preset and " at 0x" not in preset


def test_swap_specs_take_a_compiled_rounding_rule():
    """"rounding" and "grad_rounding" in a swap spec may be a compiled rule (quantize(rounding=rule)):
    toward zero written as a rule trains exactly as the built-in mode does."""
    import numba
    import torch

    from lowprec import nn as lnn

    @numba.njit
    def toward_zero(x, lo, hi):
        return lo if abs(lo) < abs(hi) else hi

    grads = []
    for rounding in (toward_zero, "toward_zero", "nearest_even"):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        lnn.swap(model, {"Linear": {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "grad": "fp8_e5m2",
                                    "rounding": rounding, "grad_rounding": rounding}})
        x = torch.randn(16, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
        model(x).pow(2).sum().backward()
        grads.append((x.grad.clone(), model[0].weight.grad.clone()))
    assert all(torch.equal(a, b) for a, b in zip(grads[0], grads[1]))
    assert not torch.equal(grads[0][1], grads[2][1])  # the rule acted: nearest-even trains otherwise
