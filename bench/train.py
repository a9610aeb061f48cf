"""Seconds per training step (batch 256, SGD) of the digits CNN and a 4-layer MLP (width 256) in fp32,
in "fake" mode (fp8_e4m3fn weights/activations, fp8_e5m2 gradients, float32 arithmetic) and in "mac"
mode (the same formats, bit-accurate fp16 accumulation in chunks of 16 through lowprec.MAC), one
thread; and of the character transformer (sims.transformer: 2 layers, width 128, batch 32 x 64
characters) in fp32 and emulated (lowprec.nn.emulate) with the same formats in every linear and
attention product ("fake"), plus bf16 vector ops (softmax, layer norm, gelu: "fake+vec"). Ratios
against fp32 measured in the same run. Usage: python bench/train.py [--steps N]
"""

import argparse
import copy
import time

import torch

from lowprec import nn as lnn
from lowprec.sims import digits, transformer

FORMATS = {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "grad": "fp8_e5m2"}
SPECS = {
    "fp32": None,
    "fake": {k: dict(FORMATS) for k in ("Linear", "Conv2d")},
    "mac": {k: dict(FORMATS, mac={"mode": "mac", "acc": "fp16", "chunk": 16, "chunk_acc": "fp32"})
            for k in ("Linear", "Conv2d")},
}


EMULATED = {
    "fp32": None,
    "fake": {k: dict(FORMATS) for k in ("linear", "matmul")},
    "fake+vec": dict({k: dict(FORMATS) for k in ("linear", "matmul")},
                     **{k: {"format": "bf16"} for k in ("softmax", "layer_norm", "gelu")}),
}


def classification_loss(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)


def step_time(model, x, y, steps, loss=classification_loss):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        loss(model, x, y).backward()
        opt.step()

    step()
    best = float("inf")
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import lowprec

    lowprec.set_num_threads(1)
    xtr, ytr, _, _ = digits.load()
    x, y = torch.from_numpy(xtr[:256]), torch.from_numpy(ytr[:256])
    print("seconds per training step, batch 256, 1 thread (best of", args.steps, ")")
    for name, build in (("CNN", digits.cnn), ("MLP 4x256", digits.mlp)):
        base = None
        for label, spec in SPECS.items():
            model = build(0)
            if spec:  # the keys of the layer types this model has
                kinds = {type(m).__name__ for m in model.modules()}
                lnn.swap(model, {k: copy.deepcopy(v) for k, v in spec.items() if k in kinds})
            t = step_time(model, x, y, args.steps)
            base = base or t
            print(f"  {name:<10} {label:<8} {t * 1e3:9.2f} ms   {t / base:6.2f}x fp32")
    xs, ys = next(transformer.batches(transformer.stdlib_text(200_000), 32, 64, seed=0))
    base = None
    for label, spec in EMULATED.items():
        model = transformer.CharTransformer()
        if spec:
            lnn.emulate(model, spec, strict=True)
        t = step_time(model, xs, ys, args.steps, loss=transformer.loss)
        base = base or t
        print(f"  {'GPT 2x128':<10} {label:<8} {t * 1e3:9.2f} ms   {t / base:6.2f}x fp32")


if __name__ == "__main__":
    main()
