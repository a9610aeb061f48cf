"""Post-training quantization tools beside calibrate: batch-norm folding, bias correction and GPTQ.

- ``fold_batchnorm(model)``: every BatchNorm1d/2d that directly follows a Linear/Conv1d/Conv2d whose
  output nothing else reads (found by torch.fx, or by adjacency in nn.Sequential where tracing fails)
  is folded into it: w' = w * g, b' = (b - mean) * g + beta with g = gamma / sqrt(var + eps), and
  replaced by nn.Identity. For inference (the running statistics); in place, returns the folded pairs.
- ``correct_bias(model, batches)``: for each swapped layer with a weight format, the expected error
  its rounded weights add to each output, (W - Q(W)) E[x] (E[x] per input feature or channel over the
  batches; a convolution's summed over its kernel positions, padding ignored), is added to its bias
  (Nagel et al., "Data-Free Quantization", ICCV 2019, section 4.2, its empirical form).
- ``gptq(weight, inputs, fmt)``: GPTQ (Frantar et al., ICLR 2023, Algorithm 1): the columns of W
  (out x in) quantized in order, each column's error spread over the columns not yet quantized through
  the inverse Hessian of the layer's squared output error, H = 2 X^T X + damp * mean(diag H) * I, in
  blocks of `block` columns with lazy batch updates. `fmt`: any lowprec element format (a float format,
  fixed point, or an IntAffineFormat per output channel, axis 0), or "int<b>" for b-bit symmetric integers
  per output channel fitted to W. ``gptq_layer(layer, batches, fmt)`` runs it on a Linear/Conv layer
  (a convolution's inputs as its patches), writing the quantized weight in place.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import quantize
from ..formats import BlockFormat, as_format, fit_groupwise

_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)
_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)


def _pairs_fx(model: torch.nn.Module) -> list[tuple[str, str]]:
    import torch.fx

    graph = torch.fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), _NORMS):
            continue
        src = node.args[0] if node.args else None
        if (getattr(src, "op", None) == "call_module" and isinstance(modules.get(src.target), _LAYERS)
                and len(src.users) == 1):
            pairs.append((src.target, node.target))
    return pairs


def _pairs_sequential(model: torch.nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Sequential):
            children = list(module.named_children())
            for (a, ma), (b, mb) in zip(children, children[1:]):
                if isinstance(ma, _LAYERS) and isinstance(mb, _NORMS):
                    prefix = f"{name}." if name else ""
                    pairs.append((prefix + a, prefix + b))
    return pairs


def fold_batchnorm(model: torch.nn.Module) -> list[tuple[str, str]]:
    """Fold batch norms into the layers before them (see the module doc); returns (layer, norm) names."""
    try:
        pairs = _pairs_fx(model)
    except Exception:  # noqa: BLE001 - fx cannot trace every model; adjacency in Sequential still folds
        pairs = _pairs_sequential(model)
    modules = dict(model.named_modules())
    for layer_name, norm_name in pairs:
        layer, norm = modules[layer_name], modules[norm_name]
        if not norm.track_running_stats or norm.running_mean is None:
            raise ValueError(f"{norm_name}: a batch norm without running statistics cannot be folded")
        with torch.no_grad():
            g = (norm.weight if norm.affine else torch.ones_like(norm.running_var)) / torch.sqrt(norm.running_var + norm.eps)
            beta = norm.bias if norm.affine else torch.zeros_like(norm.running_mean)
            shape = (-1,) + (1,) * (layer.weight.dim() - 1)
            layer.weight.mul_(g.reshape(shape))
            b = layer.bias if layer.bias is not None else torch.zeros_like(norm.running_mean)
            new_bias = (b - norm.running_mean) * g + beta
            if layer.bias is None:
                layer.bias = torch.nn.Parameter(new_bias)
            else:
                layer.bias.copy_(new_bias)
        parent_name, _, child = norm_name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, torch.nn.Identity())
    return pairs


def feed(model: torch.nn.Module, batches: Any, layers: dict, watch: Any) -> int:
    """Run the batches through the model (no gradients) with watch(name) as each layer's forward
    pre-hook; returns how many batches ran."""
    hooks = [m.register_forward_pre_hook(watch(n)) for n, m in layers.items()]
    seen = 0
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
                seen += 1
    finally:
        for h in hooks:
            h.remove()
    return seen


def correct_bias(model: torch.nn.Module, batches: Any) -> dict[str, float]:
    """Bias correction of the swapped layers with weight formats (see the module doc); returns each
    layer's largest correction."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, _LAYERS) and getattr(m, "q_weight", None)
              is not None and not isinstance(m.q_weight, str)}
    if not layers:
        raise ValueError("correct_bias needs swapped layers with weight formats (lowprec.nn.swap or calibrate)")
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def watch(name):
        def hook(module, args):
            x = args[0].detach().double()
            dims = [d for d in range(x.dim()) if d != (x.dim() - 1 if isinstance(module, torch.nn.Linear) else 1)]
            sums[name] = sums.get(name, 0) + x.sum(dims)
            counts[name] = counts.get(name, 0) + x.numel() // x.shape[-1 if isinstance(module, torch.nn.Linear) else 1]
        return hook

    if not feed(model, batches, layers, watch):
        raise ValueError("batches was empty: bias correction needs data")
    out = {}
    for name, m in layers.items():
        mean = sums[name] / counts[name]
        w = m.weight.detach().double()
        wq = torch.as_tensor(np.asarray(quantize(w.cpu().numpy(), m.q_weight)), dtype=torch.float64)
        err = (w.cpu() - wq)
        if err.dim() > 2:  # a convolution: the error summed over its kernel positions
            err = err.sum(dim=tuple(range(2, err.dim())))
        groups = getattr(m, "groups", 1)
        if groups > 1:
            og, cg = err.shape[0] // groups, err.shape[1]
            fix = torch.cat([err[g * og:(g + 1) * og] @ mean[g * cg:(g + 1) * cg] for g in range(groups)])
        else:
            fix = err @ mean
        with torch.no_grad():
            if m.bias is None:
                m.bias = torch.nn.Parameter(fix.to(m.weight.dtype).to(m.weight.device))
            else:
                m.bias.add_(fix.to(m.bias.dtype).to(m.bias.device))
        out[name] = float(fix.abs().max())
    return out


def _column_format(fmt: Any, weight: np.ndarray) -> Any:
    """The format GPTQ rounds each column (out,) to: "int<b>": symmetric per output channel fitted to
    the weight (max |row| / (2**(b-1) - 1)); otherwise the given element format."""
    if isinstance(fmt, str):
        m = re.fullmatch(r"int(\d+)", fmt)
        if m:  # one group per row: fit_groupwise's symmetric fit
            return fit_groupwise(weight, int(m.group(1)), weight.shape[1], symmetric=True).rows
    fmt = as_format(fmt)
    if isinstance(fmt, BlockFormat):
        raise ValueError(f"gptq rounds one column at a time: a block-scaled format ({fmt.name}) blocks along "
                         "the columns it has not rounded yet; give an element or per-channel format")
    return fmt


def gptq(weight: Any, inputs: Any, fmt: Any, *, block: int = 128, damp: float = 0.01,
         group: int | None = None) -> np.ndarray:
    """The GPTQ-quantized weight (out x in, float64) given calibration inputs (n x in); see the module
    doc. The columns run in their given order. `group` (with fmt "int<b>"): asymmetric b-bit integers
    per output row and group of `group` columns, each group's scales fitted by min-max to the weights
    as GPTQ has updated them when it reaches the group's first column (the paper's group variant)."""
    W = np.array(weight, dtype=np.float64)
    X = np.asarray(inputs, dtype=np.float64)
    if W.ndim != 2 or X.ndim != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(f"gptq needs weight (out, in) and inputs (n, in); got {W.shape} and {X.shape}")
    if not 0 <= damp < 1:
        raise ValueError(f"damp must be in [0, 1), got {damp}")
    if group is not None:
        m = re.fullmatch(r"int(\d+)", fmt) if isinstance(fmt, str) else None
        if m is None or isinstance(group, bool) or not isinstance(group, int) or group < 1:
            raise ValueError(f"group takes fmt 'int<b>' and an int >= 1; got fmt={fmt!r}, group={group!r}")
        group_bits = int(m.group(1))
    qfmt = None if group is not None else _column_format(fmt, W)
    cols = W.shape[1]
    H = 2.0 * X.T @ X
    dead = np.diag(H) == 0  # inputs always 0: those weights do not matter; pin them (the paper's code)
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * np.mean(np.diag(H)) * np.eye(cols)
    Hinv = np.linalg.cholesky(np.linalg.inv(H)).T  # upper Cholesky factor of H^-1
    Q = np.zeros_like(W)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1, Err = W[:, i1:i2].copy(), np.zeros((W.shape[0], i2 - i1))
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w, d = W1[:, i], Hinv1[i, i]
            if group is not None and (i1 + i) % group == 0:  # this group's scales, from the updated weights
                ahead = np.concatenate([W1[:, i:], W[:, i2:]], axis=1)[:, :group]
                qfmt = _group_column_format(ahead, group_bits)
            q = np.asarray(quantize(w, qfmt), dtype=np.float64)
            Q[:, i1 + i] = q
            err = (w - q) / d
            W1[:, i:] -= np.outer(err, Hinv1[i, i:])
            Err[:, i] = err
        W[:, i2:] -= Err @ Hinv[i1:i2, i2:]
    return Q


def _group_column_format(w: np.ndarray, bits: int) -> Any:
    """Asymmetric unsigned b-bit integers per row fitted by min-max to w (out, group): fit_groupwise's."""
    return fit_groupwise(w, bits, w.shape[1]).rows


def _layer_inputs(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A layer's inputs as rows of its weight's columns: a Linear's flattened, a convolution's patches."""
    if isinstance(layer, torch.nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str):
        raise ValueError("gptq_layer takes convolutions with groups=1 and numeric zero padding")
    if isinstance(layer, torch.nn.Conv1d):
        x = x.unsqueeze(2)
        k, s, p, d = (1, layer.kernel_size[0]), (1, layer.stride[0]), (0, layer.padding[0]), (1, layer.dilation[0])
    else:
        k, s, p, d = layer.kernel_size, layer.stride, layer.padding, layer.dilation
    cols = F.unfold(x, k, dilation=d, padding=p, stride=s)  # (n, c*k, L), the weight's column order
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def gptq_layer(layer: torch.nn.Module, batches: Any, fmt: Any, **kwargs: Any) -> torch.nn.Module:
    """GPTQ on one Linear/Conv1d/Conv2d from the inputs it sees over `batches` (tensors fed to the
    layer itself); its weight is replaced by the quantized one (float values of `fmt`)."""
    rows = [_layer_inputs(layer, b.detach().double()) for b in batches]
    if not rows:
        raise ValueError("batches was empty: gptq needs calibration inputs")
    X = torch.cat(rows).cpu().numpy()
    w = layer.weight.detach().double().cpu()
    Q = gptq(w.reshape(w.shape[0], -1).numpy(), X, fmt, **kwargs)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(Q).reshape(w.shape).to(layer.weight.dtype))
    return layer
