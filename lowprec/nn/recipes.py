"""FP8/FP4 training recipes as named specs for lowprec.nn.emulate (``emulate(model, recipe=name)``,
a spec given beside it overriding the recipe's op kinds). Each applies to the linear layers' three
GEMMs (forward, dgrad, wgrad), as the libraries do; attention products and vector ops stay as the
spec leaves them.

- ``te_delayed``: Transformer Engine's DelayedScaling (HYBRID: E4M3 forward, E5M2 gradients; per-tensor
  scales from an amax history: `history` 1024, `algo` "max", `margin` 0).
- ``te_current``: Transformer Engine's Float8CurrentScaling (the same formats, scales from each
  tensor's own amax).
- ``mxfp8``: MXFP8 as NVIDIA's recipe trains with it (arXiv:2506.08027): E4M3 elements in 32-element
  blocks with E8M0 scales rounded up so that no block saturates (the "rceil" rule), for every operand,
  gradients included; blocks re-formed along each backward GEMM's reduction from the unrounded
  tensors. `rule="floor"` gives OCP MX v1.0's scale.
- ``deepseek_blockwise``: DeepSeek-V3's fine-grained FP8 (arXiv:2412.19437, section 3.3): E4M3 for
  every tensor, float32 scales (amax / 448), activations and gradients in 1 x 128 tiles along the
  reduction (128 x 1 in wgrad), weights in 128 x 128 blocks.
- ``nvfp4_training``: NVIDIA's NVFP4 pretraining recipe (arXiv:2509.25149): NVFP4 (E2M1, 16-element
  blocks, E4M3 scales and a float32 tensor scale) for every operand, weights in 16 x 16 blocks,
  stochastic rounding of gradients, a 16-point random Hadamard transform on both wgrad operands;
  modules matching `keep` (e.g. the last layers, "head") stay in float32.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from ..formats import BlockFormat, as_format

E4M3, E5M2 = "fp8_e4m3fn", "fp8_e5m2"


def _te(scaling: str, margin: int = 0, history: int = 1024, algo: str = "max") -> dict:
    def cast(fmt):
        out = {"format": fmt, "scaling": scaling, "margin": margin}
        return dict(out, history=history, algo=algo) if scaling == "delayed" else out

    return {"linear": {"input": cast(E4M3), "weight": cast(E4M3), "grad": cast(E5M2)}}


def _mxfp8(rule: str = "rceil") -> dict:
    fmt = replace(as_format("mxfp8_e4m3"), rule=rule, name=f"mxfp8_e4m3 ({rule})")
    return {"linear": {"input": fmt, "weight": fmt, "grad": fmt}}


def _deepseek(tile: int = 128) -> dict:
    rows = BlockFormat(E4M3, block=tile, scale="fp32", name=f"e4m3 1x{tile} fp32-scaled")
    blocks = BlockFormat(E4M3, block=(tile, tile), scale="fp32", name=f"e4m3 {tile}x{tile} fp32-scaled")
    return {"linear": {"input": rows, "weight": blocks, "grad": rows}}


def _nvfp4(keep: tuple = (), hadamard: int = 16, seed: int = 0) -> dict:
    nvfp4 = as_format("nvfp4")
    weights = replace(nvfp4, block=(16, 16), name="nvfp4 16x16")
    spec = {"linear": {"input": nvfp4, "weight": weights, "grad": nvfp4, "grad_rounding": "stochastic",
                       "wgrad": {"hadamard": hadamard, "hadamard_seed": seed}}}
    for pattern in keep:
        spec[pattern] = {"linear": None}
    return spec


_RECIPES: dict[str, Callable[..., dict]] = {
    "te_delayed": lambda **kw: _te("delayed", **kw),
    "te_current": lambda **kw: _te("current", **kw),
    "mxfp8": _mxfp8,
    "deepseek_blockwise": _deepseek,
    "nvfp4_training": _nvfp4,
}


def names() -> list[str]:
    """The recipes' names."""
    return list(_RECIPES)


def get(name: str, **options: Any) -> dict:
    """The spec of a recipe, with its options (te_*: margin, history, algo; mxfp8: rule;
    deepseek_blockwise: tile; nvfp4_training: keep, hadamard, seed)."""
    if name not in _RECIPES:
        raise ValueError(f"unknown recipe {name!r}; recipes: {', '.join(_RECIPES)}")
    try:
        return _RECIPES[name](**options)
    except TypeError as exc:
        raise ValueError(f"recipe {name!r}: {exc}") from None


def merged(recipe: str | dict, spec: dict | None) -> dict:
    """A recipe's spec (a name, or {"name": ..., options}) with a spec's keys over it."""
    if isinstance(recipe, dict):
        options = dict(recipe)
        base = get(options.pop("name", None), **options)
    else:
        base = get(recipe)
    return {**base, **(spec or {})}
