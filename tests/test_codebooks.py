"""Lookup-table (codebook) and logarithmic formats, and k-means codebooks: every mode against exact
rational decisions, round trips, per-channel tables, the paper's formulas, numpy Lloyd, bad input."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowprec
from lowprec.formats import LogFormat, LUTFormat, kmeans_codebook

from helpers import assert_same

RNG = np.random.default_rng(11)


def _exact_choice(x: float, book: np.ndarray, mode: str) -> int:
    """The index a mode picks for finite x, by rational arithmetic (the documented rules)."""
    xf = Fraction(float(x))
    if xf <= Fraction(float(book[0])):
        return 0
    if xf >= Fraction(float(book[-1])):
        return book.size - 1
    i = int(np.searchsorted(book, float(x), side="right")) - 1
    lo, hi = Fraction(float(book[i])), Fraction(float(book[i + 1]))
    if xf == lo:
        return i
    if mode == "up":
        return i + 1
    if mode == "down":
        return i
    mid = (lo + hi) / 2
    if xf != mid:
        return i + 1 if xf > mid else i
    if mode == "nearest_even":
        return i if i % 2 == 0 else i + 1
    return i + 1 if mid >= 0 else i  # nearest_away


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=70, unique=True),
       st.sampled_from(["nearest_even", "nearest_away", "up", "down"]), st.sampled_from([np.float32, np.float64]),
       st.data())
def test_every_mode_picks_the_exact_entry(book, mode, dtype, data):
    fmt = LUTFormat(book)
    b = fmt.codebook
    mids = [(b[i] + b[i + 1]) / 2 for i in range(b.size - 1)]  # ties, as doubles (often exact)
    x = np.concatenate([b, mids, np.nextafter(b, np.inf), np.nextafter(b, -np.inf),
                        data.draw(hnp.arrays(np.float64, 20, elements=st.floats(-2e6, 2e6)))]).astype(dtype)
    codes = lowprec.encode(x, fmt, mode)
    expected = [_exact_choice(v, b, mode) for v in x]
    np.testing.assert_array_equal(codes, expected)
    assert_same(lowprec.quantize(x, fmt, mode), b[expected].astype(dtype))


def test_sixteen_entries_use_the_scan_and_large_tables_the_binary_search():
    for k in (16, 1000):  # both C paths: up to 64 entries the scan (float32 on AVX-512: a search of permutes), binary search above
        fmt = LUTFormat(np.sort(RNG.standard_normal(k)))
        x = RNG.standard_normal(20000).astype(np.float32)
        mids = (fmt.codebook[1:] + fmt.codebook[:-1]) / 2
        np.testing.assert_array_equal(lowprec.encode(x, fmt), np.searchsorted(mids, x.astype(np.float64), "left"))


def test_stochastic_is_unbiased_and_seeded():
    fmt = LUTFormat([0.0, 1.0, 4.0])
    x = np.full(200000, 2.5, np.float32)  # between 1 and 4: up with probability 0.5
    q = lowprec.quantize(x, fmt, "stochastic", seed=3)
    assert set(np.unique(q)) == {1.0, 4.0}
    assert abs(q.mean() - 2.5) < 0.02
    assert_same(q, lowprec.quantize(x, fmt, "stochastic", seed=3))
    assert_same(lowprec.quantize(fmt.codebook.astype(np.float32), fmt, "stochastic", seed=1),
                fmt.codebook.astype(np.float32))  # entries stay


def test_specials_round_trips_and_torch():
    fmt = LUTFormat([-2.0, -0.5, 0.0, 1.0])
    x = np.array([np.inf, -np.inf, np.nan, -0.0], np.float32)
    assert_same(lowprec.quantize(x, fmt), np.array([1.0, -2.0, np.nan, 0.0], np.float32))
    with pytest.raises(ValueError, match="NaN"):
        lowprec.encode(x, fmt)
    codes = np.arange(4)
    assert_same(lowprec.decode(codes, fmt), fmt.codebook)
    np.testing.assert_array_equal(lowprec.encode(lowprec.decode(codes, fmt), fmt), codes)
    torch = pytest.importorskip("torch")
    t = torch.tensor([0.3, -1.0])
    assert lowprec.quantize(t, fmt).tolist() == [0.0, -0.5]


def test_per_channel_codebooks():
    w = RNG.standard_normal((3, 5, 4)).astype(np.float32)
    books = np.sort(RNG.standard_normal((5, 8)), axis=1)
    fmt = LUTFormat(books, axis=1)
    q = lowprec.quantize(w, fmt)
    for c in range(5):
        assert_same(q[:, c], lowprec.quantize(np.ascontiguousarray(w[:, c]), LUTFormat(books[c])))
    assert_same(lowprec.decode(lowprec.encode(w, fmt), fmt).astype(np.float32), q)
    with pytest.raises(ValueError, match="channels"):
        lowprec.quantize(w[:, :4], fmt)


# -- logarithmic --------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_domain_rounding_is_the_papers_formula(k, dtype):
    fmt = LogFormat(5, k=k, fsr=2)  # 15 magnitudes 2**(e/k), e in [2k - 14, 2k]
    x = (RNG.standard_normal(20000) * 2.0 ** RNG.integers(-8, 3, 20000)).astype(dtype)
    q = lowprec.quantize(x, fmt)
    a = np.abs(x.astype(np.float64))
    e = np.round(np.log2(np.where(a > 0, a, 1.0)) * k)  # Round(log2 |x|) in units of 1/k
    e = np.minimum(e, 2 * k)
    expected = np.where((e < fmt.e_min) | (a == 0), 0.0, np.sign(x) * np.exp2(np.maximum(e, fmt.e_min) / k))
    near_boundary = np.abs(np.log2(np.where(a > 0, a, 1.0)) * k - np.floor(np.log2(np.where(a > 0, a, 1)) * k) - 0.5) < 1e-9
    ok = (q.astype(np.float64) == expected.astype(dtype)) | near_boundary
    assert ok.all(), x[~ok][:5]
    assert np.isin(q, fmt.codebook.astype(dtype)).all()


def test_log_format_values_and_linear_domain():
    fmt = LogFormat(4, k=1, fsr=0)
    assert fmt.codebook.tolist() == [-1, -0.5, -0.25, -0.125, -0.0625, -0.03125, -0.015625, 0,
                                     0.015625, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1]
    x = np.array([0.7071067, 0.7071068, 0.74, 0.76], np.float32)
    assert lowprec.quantize(x, fmt).tolist() == [0.5, 1.0, 1.0, 1.0]  # boundary sqrt(1/2)
    assert lowprec.quantize(x, LogFormat(4, domain="linear")).tolist() == [0.5, 0.5, 0.5, 1.0]  # boundary 3/4
    half = LogFormat(3, k=2, fsr=0, signed=False)
    assert np.allclose(half.codebook, [0, 2**-3, 2**-2.5, 2**-2, 2**-1.5, 2**-1, 2**-0.5, 1])


# -- k-means ------------------------------------------------------------------------------------------
def _numpy_lloyd(v, k, iters):
    c = np.linspace(v.min(), v.max(), k)
    for _ in range(iters):
        assign = np.argmin(np.abs(v[:, None] - c[None, :]), axis=1)
        new = np.array([v[assign == j].mean() if (assign == j).any() else c[j] for j in range(k)])
        new.sort()
        if np.array_equal(new, c):
            break
        c = new
    return np.unique(c)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_kmeans_matches_a_straightforward_lloyd(bits):
    w = RNG.standard_normal(3000)
    fmt = kmeans_codebook(w, bits, iters=40)
    np.testing.assert_allclose(fmt.codebook, _numpy_lloyd(w, 2**bits, 40), rtol=1e-12, atol=1e-15)
    assert fmt.entries == 2**bits
    q = lowprec.quantize(w, fmt)
    assert np.isin(q, fmt.codebook).all()


def test_kmeans_per_channel_and_determinism():
    w = RNG.standard_normal((4, 50))
    w[3] = 0.5  # one distinct value: padded entries above it
    fmt = kmeans_codebook(w, 3, axis=0, sample=30, seed=1)
    assert fmt.codebook.shape == (4, 8)
    assert np.array_equal(fmt.codebook, kmeans_codebook(w, 3, axis=0, sample=30, seed=1).codebook)
    assert (lowprec.quantize(w, fmt)[3] == 0.5).all()


# -- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("book, match", [
    ([], "empty"), ([1.0, np.nan], "finite"), ([1.0, 2.0, 1.0], "duplicate"), ([[[1.0]]], "1-D"),
    (np.arange(70000.0), "at most"),
])
def test_bad_codebooks(book, match):
    with pytest.raises(ValueError, match=match):
        LUTFormat(book)


def test_bad_log_and_kmeans_parameters():
    with pytest.raises(ValueError, match="bits"):
        LogFormat(1)
    with pytest.raises(ValueError, match="domain"):
        LogFormat(4, domain="ln")
    with pytest.raises(ValueError, match="rounding"):
        lowprec.quantize(np.ones(3, np.float32), LogFormat(4), "toward_zero")
    with pytest.raises(ValueError, match="bits"):
        kmeans_codebook(np.ones(4), 0)
    with pytest.raises(ValueError, match="empty"):
        kmeans_codebook(np.zeros(0), 2)
    with pytest.raises(ValueError, match="codes"):
        lowprec.decode(np.array([7]), LUTFormat([0.0, 1.0]))


def test_the_bucket_index_finds_what_the_binary_search_finds():
    """Large float32 tables go through a bucket index (csrc/lut_impl.h): the same code as numpy's
    searchsorted (#{t <= x}) for every input, with thresholds clustered (buckets holding many), at
    zero, tiny and huge, with ties on thresholds, signed zeros, Inf and NaN."""
    from lowprec.array import codebook as cb
    from lowprec.kernels.native import ffi, lib

    rng = np.random.default_rng(8)
    thr = np.sort(np.concatenate([rng.standard_normal(150), 1.0 + np.arange(40) * 2.0**-20, [0.0, -0.0, 1e-40, -1e-40],
                                  [3e38, -3e38], rng.standard_normal(60) * 1e-30])).astype(np.float32)
    x = np.concatenate([rng.standard_normal(200000), thr, np.nextafter(thr, np.inf), np.nextafter(thr, -np.inf),
                        1.0 + np.arange(-100, 100) * 2.0**-21, [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45]])
    x = x.astype(np.float32)
    table = np.arange(thr.size + 1, dtype=np.float32)
    buckets = cb.bucket_index(thr)
    lo, hi = buckets & 0xFFFF, (buckets >> 16) & 0xFFFF
    assert (hi - lo).max() > 2 and ((hi - lo) == 2).any()  # buckets with several thresholds (the slow lanes)
    assert np.array_equal(buckets >> 32, thr.view(np.uint32)[np.minimum(lo, thr.size - 1)])
    out, idx = np.empty_like(x), np.empty(x.shape, np.uint16)
    lib.lp_lut_bucket_f32(ffi.from_buffer("float[]", x), x.size, ffi.from_buffer("float[]", thr), thr.size,
                          ffi.from_buffer("uint64_t[]", buckets), ffi.from_buffer("float[]", table),
                          ffi.from_buffer("float[]", out), ffi.from_buffer("uint16_t[]", idx), 2)
    want = np.where(np.isnan(x), 0, np.searchsorted(thr, x, side="right"))
    assert np.array_equal(idx, want)
    assert np.array_equal(out, np.where(np.isnan(x), x, table[want]), equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stochastic_c_kernel_is_the_numpy_rule(dtype):
    """Per-tensor stochastic rounding to a codebook in C (csrc/lut_impl.h) against the numpy statement
    of the rule (_stochastic_step, the same draws): a LUT and a log format, values beyond both ends,
    entries themselves, NaN, Inf, zeros of both signs; quantize (into out= and not) and encode, whose
    chunks start deep into the draw stream (arrays past 65536 elements)."""
    from lowprec.array.codebook import _run, _stochastic_step, _tables

    rng = np.random.default_rng(41)
    for fmt in (LUTFormat(np.sort(rng.standard_normal(200))), lowprec.LogFormat(4)):
        x = (rng.standard_normal(70000) * 3).astype(dtype)
        x[:8] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, fmt.codebook[3]]
        thr, table = _tables(fmt, np.dtype(dtype), "stochastic")[0]
        _, down = _run(x, thr, table, False, True)
        codes = _stochastic_step(x[None], down[None], fmt, 5)[0]
        want = np.where(np.isnan(x), x, table[codes])
        assert_same(lowprec.quantize(x, fmt, "stochastic", seed=5), want, repr(fmt))
        out = np.empty_like(x)
        assert lowprec.quantize(x, fmt, "stochastic", seed=5, out=out) is out
        assert_same(out, want, repr(fmt) + " out=")
        finite = np.isfinite(x)
        got_codes = lowprec.encode(x[finite], fmt, "stochastic", seed=5)
        _, down = _run(x[finite], thr, table, False, True)
        assert np.array_equal(got_codes, _stochastic_step(x[finite][None], down[None], fmt, 5)[0].astype(got_codes.dtype))


def test_stochastic_rounding_of_a_large_array_is_the_numpy_rule():
    """quantize searches and steps a large array in pieces (codebook._SR_PIECE elements, each from its
    own place in the draw stream), float32 over 2**20 elements through the bucket index: the numpy rule
    on the whole array, ragged end included."""
    from lowprec.array import codebook as cb

    rng = np.random.default_rng(43)
    fmt = LUTFormat(np.sort(rng.standard_normal(200)))
    x = (rng.standard_normal((1 << 20) + 1500) * 2).astype(np.float32)
    assert x.size > 4 * cb._SR_PIECE and x.size % cb._SR_PIECE
    thr, table = cb._tables(fmt, np.dtype(np.float32), "stochastic")[0]
    down = np.searchsorted(thr, x, side="right").astype(np.uint16)
    want = table[cb._stochastic_step(x[None], down[None], fmt, 9)[0]]
    assert_same(lowprec.quantize(x, fmt, "stochastic", seed=9), want)


def _numpy_stochastic(x: np.ndarray, fmt: LUTFormat, seed: int) -> np.ndarray:
    """The stochastic rule in numpy (_stochastic_step on the 'down' search), x's dtype, NaN kept."""
    from lowprec.array.codebook import _stochastic_step, _tables

    thr, table = _tables(fmt, x.dtype, "stochastic")[0]
    down = np.where(np.isnan(x), 0, np.searchsorted(thr, x, side="right")).astype(np.uint16)
    codes = _stochastic_step(x.reshape(1, -1), down.reshape(1, -1), fmt, seed)[0]
    return np.where(np.isnan(x), x, table[codes]).astype(x.dtype)


@pytest.mark.parametrize("threads", [1, 2])
def test_fused_small_codebook_stochastic_is_the_rule(threads, monkeypatch):
    """Codebooks of 1 to 16 entries take one fused pass for float32 (lp_lut_sr_fused_f32 where the machine has
    AVX-512): the numpy rule and the two-pass kernel, bit for bit, for random tables, one with a gap too
    small for its inverse (the division decides), entries, thresholds' neighbours, exact midpoints, values
    beyond both ends, NaN, Inf and signed zeros; a ragged length, out= and a fresh result."""
    from lowprec.array import codebook as cb

    lowprec.set_num_threads(threads)
    rng = np.random.default_rng(61)
    books = [np.sort(rng.standard_normal(k)) * 3 for k in range(1, 17)]
    books.append(np.array([0.0, 1e-300, 0.5, 1.0]))  # the gap 1e-300: a NaN inverse
    books.append(np.arange(16.0) - 8)  # midpoints exact in float32
    try:
        for book in books:
            fmt = LUTFormat(np.unique(book))
            e = fmt.codebook
            x = np.concatenate([rng.standard_normal(5000) * 4, e, (e[:-1] + e[1:]) / 2,
                                np.nextafter(e.astype(np.float32), np.float32(np.inf)),
                                np.nextafter(e.astype(np.float32), np.float32(-np.inf)),
                                [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30]]).astype(np.float32)
            x = np.concatenate([x, rng.permutation(x)])[: 2 * x.size - 5]
            want = _numpy_stochastic(x, fmt, 7)
            assert_same(lowprec.quantize(x, fmt, "stochastic", seed=7), want, f"{e.size} entries")
            out = np.full_like(x, 5.0)
            lowprec.quantize(x, fmt, "stochastic", seed=7, out=out)
            assert_same(out, want, f"{e.size} entries, out=")
            monkeypatch.setattr(cb, "FUSED_SR", False)
            assert_same(lowprec.quantize(x, fmt, "stochastic", seed=7), want, f"{e.size} entries, two passes")
            monkeypatch.setattr(cb, "FUSED_SR", True)
    finally:
        lowprec.set_num_threads(None)


@pytest.mark.parametrize("entries", [4, 100])
def test_stochastic_codebook_draws_equal_to_the_place_stay_down(entries):
    """The step goes up where the draw r < p * 2**32 (strict): x = r * 2**-32 between the entries 0 and 1
    (p * 2**32 is r itself, the case the kernels' division-free estimate cannot tell and hands to the
    division) stays at 0, x one step of 2**-32 higher goes up; fused and two-pass kernels alike, a small
    table and one searched through its bucket index (an array past codebook._BUCKET_MIN)."""
    from lowprec.array import codebook as cb
    from lowprec.kernels.philox import element_random
    from lowprec.kernels.rounding import seed_key

    fmt = LUTFormat(np.arange(float(entries)))
    n = (1 << 18) if entries <= 16 else cb._BUCKET_MIN + 5
    r = element_random(n, np.float32, seed_key(11)).astype(np.int64)
    small = r < (1 << 24) - 1  # r and r + 1 exact in float32 as multiples of 2**-32
    assert small.sum() > 500
    x = np.full(n, 2.5, np.float32)
    x[small] = (r[small] * 2.0**-32).astype(np.float32)
    above = np.flatnonzero(small)[::2]
    x[above] = ((r[above] + 1) * 2.0**-32).astype(np.float32)
    for fused in (True, False):
        cb.FUSED_SR = fused
        try:
            got = lowprec.quantize(x, fmt, "stochastic", seed=11)
        finally:
            cb.FUSED_SR = True
        stay = np.setdiff1d(np.flatnonzero(small), above)
        assert np.all(got[stay] == 0.0) and np.all(got[above] == 1.0), fused
        assert_same(got, _numpy_stochastic(x, fmt, 11))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_channel_stochastic_is_the_numpy_rule(dtype, axis):
    """Per-channel codebooks round stochastically by one C step over all channels (their codebooks one
    after another, each channel's top entry never stepping into the next channel's first): the numpy
    statement of the rule (_stochastic_step on the channel-major rows, the same draws), values and codes,
    on the first, a middle and the last axis, with values beyond both ends of each book, entries, NaN and
    Inf; and the codes stay each channel's own (a value above a channel's top entry keeps it)."""
    from lowprec.array.codebook import _channels, _run, _stochastic_step, _tables

    rng = np.random.default_rng(67)
    shape = [37, 6, 29]
    channels = shape[axis]
    books = np.sort(rng.standard_normal((channels, 11)), axis=1)
    fmt = LUTFormat(books, axis=axis)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    flat = x.reshape(-1)
    flat[:6] = [np.nan, np.inf, -np.inf, 0.0, 50.0, -50.0]
    rows, _ = _channels(x, fmt)
    tables = _tables(fmt, np.dtype(dtype), "stochastic")
    down = np.stack([_run(rows[c], thr, table, False, True)[1] for c, (thr, table) in enumerate(tables)])
    codes = _stochastic_step(rows, down, fmt, 13)
    want = np.stack([np.where(np.isnan(rows[c]), rows[c], table[codes[c]]) for c, (_, table) in enumerate(tables)])
    want = np.moveaxis(want.reshape((channels,) + tuple(np.delete(shape, axis % 3))), 0, axis)
    assert_same(lowprec.quantize(x, fmt, "stochastic", seed=13), want.astype(dtype))
    finite = np.where(np.isfinite(x), x, 0).astype(dtype)
    got = lowprec.encode(finite, fmt, "stochastic", seed=13)
    rows, _ = _channels(finite, fmt)
    down = np.stack([_run(rows[c], thr, table, False, True)[1] for c, (thr, table) in enumerate(tables)])
    codes = _stochastic_step(rows, down, fmt, 13)
    assert np.array_equal(np.moveaxis(codes.reshape((channels,) + tuple(np.delete(shape, axis % 3))), 0, axis), got)
    assert got.max() < books.shape[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", [64, 1 << 18])
def test_per_channel_blocks_are_each_channels_own_codebook(dtype, block, monkeypatch):
    """Per-channel codebooks in a deterministic mode move blocks of the outer axes channel-major one at a
    time (codebook._blocked_round; block: elements a block, small ones leaving a ragged last block):
    every mode's values and codes are, channel by channel, those of that channel's own codebook, on a
    middle and the last axis, with NaN, Inf and both zeros."""
    from lowprec.array import codebook as cb

    monkeypatch.setattr(cb, "_BLOCK", block)
    rng = np.random.default_rng(71)
    for shape, axis in (((7, 5, 3), 1), ((9, 6), -1), ((4, 3, 2, 5), 2)):
        channels = shape[axis]
        books = np.sort(rng.standard_normal((channels, 9)), axis=1)
        fmt = LUTFormat(books, axis=axis)
        x = (rng.standard_normal(shape) * 2).astype(dtype)
        x.reshape(-1)[:5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
        finite = np.where(np.isfinite(x), x, 1.0).astype(dtype)
        for mode in ("nearest_even", "nearest_away", "up", "down"):
            q = lowprec.quantize(x, fmt, mode)
            codes = lowprec.encode(finite, fmt, mode)
            for c in range(channels):
                own = LUTFormat(books[c])
                pick = np.take(x, c, axis=axis)
                assert_same(np.take(q, c, axis=axis), lowprec.quantize(np.ascontiguousarray(pick), own, mode),
                            f"{shape} axis {axis} channel {c} {mode}")
                assert np.array_equal(np.take(codes, c, axis=axis),
                                      lowprec.encode(np.ascontiguousarray(np.take(finite, c, axis=axis)), own, mode))
