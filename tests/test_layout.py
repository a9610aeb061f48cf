"""lowprec.array.layout: the tiled copies give np.ascontiguousarray's values and layout for any view,
and the quantizers that move axes with them keep their bits (tiles forced on small arrays too)."""

import numpy as np
import pytest

import lowprec
from lowprec.array import layout
from helpers import assert_same


@pytest.fixture
def small_tiles(monkeypatch):
    monkeypatch.setattr(layout, "_TILE", 8)
    monkeypatch.setattr(layout, "_TILED_MIN", 1)


@pytest.mark.parametrize("shape", [(37, 19), (8, 8), (3, 17, 23), (5, 1, 33, 9), (130, 4)])
def test_moved_and_contiguous_equal_numpys_copies(shape, small_tiles):
    rng = np.random.default_rng(len(shape))
    arr = rng.standard_normal(shape).astype(np.float32)
    for src in range(len(shape)):
        for dst in (0, -1):
            got = layout.moved(arr, src, dst)
            want = np.ascontiguousarray(np.moveaxis(arr, src, dst))
            assert got.flags.c_contiguous and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
    for view in (arr.T, arr[..., ::-1], arr[::2], np.swapaxes(arr, 0, -1)[::-1]):
        got = layout.contiguous(view)
        assert got.flags.c_contiguous and not np.shares_memory(got, arr)
        np.testing.assert_array_equal(got, np.ascontiguousarray(view))
    assert layout.contiguous(arr) is arr  # already contiguous: no copy
    zero_d = np.array(1.5, np.float32)
    assert layout.contiguous(zero_d) is zero_d and layout.contiguous(zero_d).shape == ()


@pytest.mark.parametrize("mode", ["nearest_even", "stochastic"])
def test_block_formats_along_inner_axes_keep_their_bits_with_tiles(mode, small_tiles, monkeypatch):
    """MX and NVFP4 blocks along the first and a middle axis (ragged: padded blocks), and an
    elementwise format on transposed input: the tiled moves against numpy's own copies."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((70, 5, 45)) * 4).astype(np.float32)
    whole = (rng.standard_normal((64, 5, 48)) * 4).astype(np.float32)  # whole blocks: no padding copy
    cases = [(x, "mxfp8_e4m3", 0), (x, "nvfp4", 2), (x, "mxfp4_e2m1", 1), (x.T, "fp8_e4m3fn", None),
             (whole, "mxfp8_e4m3", 0), (whole, "nvfp4", 0), (whole.transpose(2, 1, 0), "nvfp4", 0)]
    tiled = [lowprec.quantize(a, f, mode, seed=7, **({} if ax is None else {"axis": ax})) for a, f, ax in cases]
    monkeypatch.setattr(layout, "_TILED_MIN", 1 << 62)  # numpy's copies throughout
    for (a, f, ax), got in zip(cases, tiled):
        want = lowprec.quantize(a, f, mode, seed=7, **({} if ax is None else {"axis": ax}))
        assert_same(got, want, f"{f} axis {ax} {mode}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["nearest_even", "toward_zero", "up"])
def test_inner_axis_pieces_equal_the_moved_blocks(mode, dtype, monkeypatch):
    """Block formats along an inner axis in deterministic modes, rounded without moving the axis
    (lowprec.array.block._quantize_inner_axis: E8M0 scales down the columns in C, ragged column tiles;
    float scales a piece at a time, pieces forced small so that runs and columns split), against the
    whole array moved to blocks: MX (NaN, Inf and subnormal blocks included), NVFP4 (its tensor scale;
    with an Inf anywhere the moved path itself), bfp; first and middle axes; out= apart, in place and
    overlapping."""
    from lowprec.array import block

    monkeypatch.setattr(block, "_PIECE", 64)
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((64, 6, 40)) * 2.0 ** rng.integers(-20, 20, (64, 6, 1))).astype(dtype)
    x[3, 2, 7], x[40, 1, 0] = np.nan, -np.inf
    x[:, 0, 5], x[:, 1, 3] = 1e-40, 3e38  # blocks of subnormals (scale 2**-127) and near the top
    finite = np.nan_to_num(x, nan=0.0, neginf=0.0)
    cases = [(x, "mxfp8_e4m3", 0), (x, "mxfp4_e2m1", 0), (finite, "nvfp4", 0), (x, "nvfp4", 0),
             (x.transpose(1, 0, 2).copy(), "mxint8", 1), (finite, lowprec.bfp(8, 16), 0)]
    got = [lowprec.quantize(a, f, mode, axis=ax) for a, f, ax in cases]
    into = []
    for a, f, ax in cases[:2]:
        apart, inplace = np.empty_like(a), a.copy()
        lowprec.quantize(a, f, mode, axis=ax, out=apart)
        lowprec.quantize(inplace, f, mode, axis=ax, out=inplace)
        into += [apart, inplace]
    monkeypatch.setattr(block, "_quantize_inner_axis", lambda *args: None)
    for (a, f, ax), g in zip(cases, got):
        assert_same(g, lowprec.quantize(a, f, mode, axis=ax), f"{f} axis {ax} {mode}")
    for (a, f, ax), pair in zip(cases[:2], zip(into[::2], into[1::2])):
        want = lowprec.quantize(a, f, mode, axis=ax)
        for arr in pair:
            assert_same(arr, want, f"{f} out= {mode}")
