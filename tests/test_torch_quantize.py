"""The pure-torch quantizer is bit-identical to the C kernel (CPU here; CUDA when a GPU is present)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

torch = pytest.importorskip("torch")

import lowprec  # noqa: E402
from lowprec.testing import strategies as lst  # noqa: E402
from lowprec.torch_quantize import philox_words, quantize_torch  # noqa: E402
from lowprec.reference import philox4x32  # noqa: E402

from helpers import assert_same, boundary_inputs, random_floats  # noqa: E402

RNG = np.random.default_rng(31)
NAMES = [n for n in lowprec.formats.names("scalar")
         if not (isinstance(lowprec.formats.get(n), lowprec.FixedFormat) and lowprec.formats.get(n).overflow == "wrap")]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_philox_matches_the_reference():
    ctr = np.arange(1000, dtype=np.uint64) + 2**40
    ours = philox_words(torch.from_numpy(ctr.astype(np.int64)), 0x1234_5678_9ABC_DEF0).numpy()
    assert (ours == philox4x32(ctr, 0x1234_5678_9ABC_DEF0).astype(np.int64)).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_named_formats_every_mode(name, dtype, device):
    fmt = lowprec.formats.get(name)
    x = random_floats(RNG, 3000, dtype)
    if fmt.bits <= 16:
        x = np.concatenate([boundary_inputs(name, dtype), x]).astype(dtype)
    t = torch.from_numpy(x).to(device)
    for mode in lowprec.ROUNDING_MODES:
        for rbits in ([None, 7] if mode == "stochastic" else [None]):
            try:
                expected = lowprec.quantize(x, fmt, mode, seed=5, rbits=rbits)
            except ValueError:
                continue  # e.g. a format with no value float32 holds
            got = quantize_torch(t, fmt, mode, seed=5, rbits=rbits).cpu().numpy()
            assert_same(got, expected, f"{name} {mode} rbits={rbits}")


@settings(max_examples=80, deadline=None)
@given(lst.formats(named=False, max_exp_bits=6, max_man_bits=9), st.sampled_from(lowprec.ROUNDING_MODES), st.sampled_from([np.float32, np.float64]),
       st.data())
def test_generated_formats_and_values(fmt, mode, dtype, data):
    if isinstance(fmt, lowprec.FixedFormat) and fmt.overflow == "wrap":
        return
    x = data.draw(hnp.arrays(dtype, st.integers(1, 40), elements=lst.floats_near(fmt, width=32 if dtype == np.float32 else 64)))
    try:
        expected = lowprec.quantize(x, fmt, mode, seed=9)
    except ValueError:
        return
    assert_same(quantize_torch(torch.from_numpy(x), fmt, mode, seed=9).numpy(), expected, f"{fmt} {mode}")


def test_bad_input():
    with pytest.raises(TypeError, match="float32 or float64"):
        quantize_torch(torch.ones(3, dtype=torch.float16), "fp8_e4m3fn")
    with pytest.raises(TypeError, match="float and fixed-point"):
        quantize_torch(torch.ones(32), "mxfp8_e4m3")
    with pytest.raises(ValueError, match="wrap"):
        quantize_torch(torch.ones(3), lowprec.FixedFormat(8, 0, overflow="wrap"))


def test_channels_last_keeps_its_layout():
    x = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    q = quantize_torch(x, "fp8_e4m3fn", "stochastic", seed=2)
    assert q.is_contiguous(memory_format=torch.channels_last) and q.shape == x.shape
    # the draws follow the logical (C) order, as lowprec.quantize's on the CPU and the Triton kernel's
    assert torch.equal(q, lowprec.quantize(x.contiguous(), "fp8_e4m3fn", "stochastic", seed=2))
