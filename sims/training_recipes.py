"""FP8/FP4 training recipes on a small transformer: a character-level GPT (sims.transformer, 2 layers,
width 64, 4 heads, 32 characters of context) trained from the same initialisation on the same
batches of the Python standard library's source (no download) in fp32, bf16, each recipe of
lowprec.nn.recipes (emulated: lowprec.nn.emulate), and with bit-accurate accumulation (fp8 operands
summed in an fp16 accumulator, or on the modelled H100 fp8 tensor core promoted to fp32 every 128
products, forward and backward; against the same fp8 operands summed in float32, "fake"). AdamW, the
loss scaled by 1024 before the backward pass in every configuration (AdamW's update does not depend
on it; it keeps unscaled e5m2 gradients above their underflow). The validation loss (nats per
character, 8 held-out batches from the text's last tenth) is measured every `--eval-every` steps in
the configuration itself.

Writes recipes.csv (one row per configuration: final validation loss and its ratio to fp32),
recipes-curves.csv (the losses along training) and recipes.png, each complete or absent.
Usage: lowprec recipes [--out DIR] [--steps N] [--configs ...]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

from lowprec.sims.output import (atomic_csv, atomic_write, check_writable, has_matplotlib, parse_choices, report,
                                 run_study)

FP8 = {"input": "fp8_e4m3fn", "weight": "fp8_e4m3fn", "grad": "fp8_e5m2"}
BF16 = {"input": "bf16", "weight": "bf16", "output": "bf16", "grad": "bf16"}


def _mac(mac: dict) -> dict:
    return {"spec": {k: dict(FP8, mac=dict(mac)) for k in ("linear", "matmul")}}


CONFIGS: dict[str, dict | None] = {
    "fp32": None,
    "bf16": {"spec": {k: dict(BF16) for k in ("linear", "matmul")}},
    "te_delayed": {"recipe": "te_delayed"},
    "te_current": {"recipe": "te_current"},
    "mxfp8": {"recipe": "mxfp8"},
    "deepseek_blockwise": {"recipe": "deepseek_blockwise"},
    "nvfp4_training": {"recipe": {"name": "nvfp4_training", "keep": ("head",)}},
    "fp8, fp32 sums (fake)": {"spec": {k: dict(FP8) for k in ("linear", "matmul")}},
    "fp8, fp16 accumulator (bit-accurate)": _mac({"mode": "mac", "acc": "fp16"}),
    "fp8, h100_fp8 unit, fp32 every 128 (bit-accurate)": _mac({"mode": "mac", "unit": "h100_fp8", "chunk": 128,
                                                               "chunk_acc": "fp32"}),
}


LOSS_SCALE = 1024.0


def run(configs: list[str], *, steps: int = 300, eval_every: int = 50, width: int = 64, context: int = 32,
        batch: int = 16, lr: float = 3e-3, seed: int = 0, val_batches: int = 8,
        progress: Any = None) -> tuple[list[dict], list[dict]]:
    """(rows, curves): per configuration its final validation loss; per evaluation the losses."""
    import warnings

    import numpy as np
    import torch

    from lowprec import nn as lnn
    from lowprec.sims import transformer

    text = transformer.stdlib_text()
    cut = int(0.9 * text.size)
    train_ids, val_ids = text[:cut], text[cut:]
    val = [b for b, _ in zip(transformer.batches(val_ids, batch, context, seed + 1000), range(val_batches))]
    base = transformer.CharTransformer(width=width, layers=2, heads=4, context=context, seed=seed)
    rows, curves, fp32 = [], [], None
    for name in configs:
        t0 = time.perf_counter()
        model = copy.deepcopy(base)
        setting = CONFIGS[name]
        if setting:
            lnn.emulate(model, setting.get("spec"), recipe=setting.get("recipe"), strict=False)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        stream = transformer.batches(train_ids, batch, context, seed)
        recent = []

        def evaluate():
            model.eval()
            with torch.no_grad():
                loss = float(np.mean([float(transformer.loss(model, x, y)) for x, y in val]))
            model.train()
            return loss

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # recipes name op kinds this model may not run
            for step in range(1, steps + 1):
                x, y = next(stream)
                opt.zero_grad()
                loss = transformer.loss(model, x, y)
                (loss * LOSS_SCALE).backward()
                opt.step()
                recent.append(float(loss))
                if step % eval_every == 0 or step == steps:
                    curves.append({"configuration": name, "step": step, "train_loss": float(np.mean(recent)),
                                   "val_loss": evaluate()})
                    recent = []
        final = curves[-1]["val_loss"]
        fp32 = final if name == "fp32" else fp32
        rows.append({"configuration": name, "val_loss": round(final, 4),
                     "vs_fp32": round(final / fp32, 4) if fp32 else None, "steps": steps, "width": width,
                     "seconds": round(time.perf_counter() - t0, 1)})
        if progress:
            progress(rows[-1])
    return rows, curves


def write_plot(curves: list[dict], path: Path) -> None:
    """Validation loss along training, one line per configuration; beside it, its ratio to fp32's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, rel) = plt.subplots(1, 2, figsize=(12, 4.8))
    base = {c["step"]: c["val_loss"] for c in curves if c["configuration"] == "fp32"}
    for i, name in enumerate(dict.fromkeys(c["configuration"] for c in curves)):
        pts = [c for c in curves if c["configuration"] == name]
        style = dict(marker=".", label=name, color=f"C{i % 10}", linestyle="--" if "bit-accurate" in name else "-")
        ax.plot([c["step"] for c in pts], [c["val_loss"] for c in pts], **style)
        if base and name != "fp32":
            rel.plot([c["step"] for c in pts if c["step"] in base],
                     [c["val_loss"] / base[c["step"]] for c in pts if c["step"] in base], **style)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation loss (nats per character)")
    ax.set_title("A character GPT on the standard library's source", fontsize=10)
    ax.legend(fontsize=7)
    rel.set_xlabel("training step")
    rel.set_ylabel("validation loss / fp32's")
    rel.set_title("relative to fp32 (same steps, initialisation and batches)", fontsize=10)
    for a in (ax, rel):
        a.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from lowprec.cli import DefaultsHelp

    ap = argparse.ArgumentParser(prog="lowprec recipes", description=__doc__.split("\n")[0],
                                 formatter_class=DefaultsHelp)
    ap.add_argument("--out", default="recipes-out", help="folder for recipes.csv, recipes-curves.csv, recipes.png")
    ap.add_argument("--configs", help="comma-separated configurations (default: all): " + "; ".join(CONFIGS))
    ap.add_argument("--steps", type=int, default=300, help="training steps per configuration (>= 1)")
    ap.add_argument("--eval-every", type=int, default=50, help="steps between validation losses (>= 1)")
    ap.add_argument("--width", type=int, default=64, help="the transformer's width (a multiple of its 4 heads)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the batches")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON (for scripts)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    args = ap.parse_args(argv)
    configs, unknown = (list(CONFIGS), []) if not args.configs else parse_choices(args.configs, list(CONFIGS))
    if unknown:
        ap.error(f"unknown --configs {unknown}; known: {'; '.join(CONFIGS)}")
    for flag, value in (("--steps", args.steps), ("--eval-every", args.eval_every), ("--width", args.width)):
        if value < 1:
            ap.error(f"{flag} must be >= 1; got {value}")
    if args.width % 4:
        ap.error(f"--width must be a multiple of 4 (the heads); got {args.width}")
    out = Path(args.out)
    progress = None if args.quiet or args.json else (
        lambda r: print(f"{r['configuration']:<52} val loss {r['val_loss']:.4f}"
                        + (f" ({r['vs_fp32']:.3f}x fp32)" if r["vs_fp32"] else "") + f"  ({r['seconds']:.0f} s)",
                        flush=True))

    def work():
        check_writable(out)
        rows, curves = run(configs, steps=args.steps, eval_every=args.eval_every, width=args.width, seed=args.seed,
                           progress=progress)
        atomic_csv(out / "recipes.csv", rows)
        atomic_csv(out / "recipes-curves.csv", curves)
        plotted = has_matplotlib()
        if plotted:
            write_plot(curves, out / "recipes.png")
        return rows, plotted

    status, result = run_study("lowprec recipes", args.debug, work)
    if status:
        return status
    rows, plotted = result
    report(rows, args.json, args.quiet, f"wrote {out / 'recipes.csv'}, {out / 'recipes-curves.csv'}" + (
        f" and {out / 'recipes.png'}" if plotted else " (no plot: pip install matplotlib)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
