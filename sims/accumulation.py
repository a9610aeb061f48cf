"""Bit-accurate accumulation in a real network: a ResNet-18 trained in fp32, then evaluated and
fine-tuned with every convolution and linear layer in mac mode (every product and partial sum rounded
as the arithmetic says, forward and backward): fp8 operands (e4m3 weights and inputs, e5m2
gradients) accumulated in fp16 (after every product; or in chunks of 64 summed in fp32, Wang et al.
2018), and on the modelled H100 fp8 tensor core (lowprec.mac_units "h100_fp8": chained over K, or
promoted to fp32 every 128 products as cuBLAS does), against fp32 and fake fp8 (fp8 operands, fp32
sums). On a GPU the MACs run in the Triton engine; on a CPU the C engine (narrow the network with
--width there).

Data: scikit-learn's digits upsampled to 3x32x32 by default (no download); --data DIR for CIFAR-10's
binary batches (data_batch_*.bin, test_batch.bin) or an ImageFolder tree (torchvision; 80/20 split).
Writes accumulation.csv (one row per configuration: test accuracy before and after fine-tuning) and
accumulation.png, each complete or absent. Usage: lowprec accumulation [--out DIR] [--data DIR]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np

from lowprec.sims.output import (atomic_csv, atomic_write, check_writable, has_matplotlib, parse_choices, report,
                                 run_study)

FP8 = {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "grad": "fp8_e5m2"}
CONFIGS: dict[str, dict | None] = {
    "fp32": None,
    "fp8 operands, fp32 sums (fake quant)": {},
    "fp8 operands, fp16 accumulator": {"mode": "mac", "acc": "fp16"},
    "fp8 operands, fp16 chunks of 64 into fp32": {"mode": "mac", "acc": "fp16", "chunk": 64, "chunk_acc": "fp32"},
    "h100_fp8 unit, chained over K": {"mode": "mac", "unit": "h100_fp8"},
    "h100_fp8 unit, fp32 promotion every 128": {"mode": "mac", "unit": "h100_fp8", "chunk": 128, "chunk_acc": "fp32"},
}


def spec_of(mac: dict | None) -> dict | None:
    """The lowprec.nn.swap spec of a configuration (None: fp32)."""
    if mac is None:
        return None
    settings = dict(FP8, mac=dict(mac)) if mac else dict(FP8)
    return {kind: copy.deepcopy(settings) for kind in ("Conv2d", "Linear")}


# -- data -----------------------------------------------------------------------------------------------
def digits32(seed: int = 0) -> tuple:
    """scikit-learn's digits (75/25 split of `seed`) as 3x32x32 float32 images (bilinear upsampling)."""
    import torch

    from lowprec.sims import digits

    xtr, ytr, xte, yte = digits.load(seed)

    def up(x):
        t = torch.nn.functional.interpolate(torch.from_numpy(x), size=(32, 32), mode="bilinear", align_corners=False)
        return t.repeat(1, 3, 1, 1).numpy()

    return up(xtr), ytr, up(xte), yte


def cifar10(folder: Path) -> tuple:
    """CIFAR-10's binary batches in folder (1 label byte + 3072 pixel bytes a record)."""
    def read(names):
        records = np.concatenate([np.fromfile(folder / n, np.uint8).reshape(-1, 3073) for n in names])
        return (records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0), records[:, 0].astype(np.int64)

    train = sorted(p.name for p in folder.glob("data_batch_*.bin"))
    if not train:
        raise ValueError(f"--data {folder}: test_batch.bin is there but no data_batch_*.bin")
    return (*read(train), *read(["test_batch.bin"]))


def image_folder(folder: Path, seed: int) -> tuple:
    """An ImageFolder tree (one subfolder per class) at 32x32, split 80/20 by `seed`."""
    try:
        import torchvision
    except ImportError:
        raise ValueError(f"--data {folder} is not CIFAR-10's binary batches; reading it as an ImageFolder tree "
                         "needs torchvision (pip install torchvision)") from None
    import torch

    tf = torchvision.transforms
    ds = torchvision.datasets.ImageFolder(str(folder), transform=tf.Compose([tf.Resize((32, 32)), tf.ToTensor()]))
    if len(ds) < 2:
        raise ValueError(f"--data {folder}: an ImageFolder tree needs at least two images")
    x = torch.stack([ds[i][0].expand(3, -1, -1) for i in range(len(ds))]).numpy()
    y = np.array(ds.targets, np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def load(data: str | None, seed: int) -> tuple:
    """(x_train, y_train, x_test, y_test), images standardised by the training set's channel means."""
    if data is None:
        xtr, ytr, xte, yte = digits32(seed)
    else:
        folder = Path(data)
        if not folder.is_dir():
            raise ValueError(f"--data must be a folder (CIFAR-10's binary batches or an ImageFolder tree); got {data}")
        xtr, ytr, xte, yte = cifar10(folder) if (folder / "test_batch.bin").exists() else image_folder(folder, seed)
    mean = xtr.mean(axis=(0, 2, 3), keepdims=True)
    std = xtr.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    return ((xtr - mean) / std).astype(np.float32), ytr, ((xte - mean) / std).astype(np.float32), yte


# -- training and evaluation ---------------------------------------------------------------------------------
def train(model: Any, x: Any, y: Any, steps: int, batch: int, lr: float, seed: int) -> None:
    """`steps` SGD steps (momentum 0.9, weight decay 5e-4) on batches drawn in a seeded order."""
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    order = torch.randperm(len(x), generator=gen)
    for step in range(steps):
        start = (step * batch) % len(x)
        if start + batch > len(x):
            order = torch.randperm(len(x), generator=gen)
        idx = order[start:start + batch]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()


def accuracy(model: Any, x: Any, y: Any, batch: int = 100) -> float:
    import torch

    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            right += int((model(x[i:i + batch]).argmax(dim=1) == y[i:i + batch]).sum())
    return right / max(len(x), 1)


def run(configs: list[str], *, data: str | None = None, epochs: int = 10, width: int = 64, evaluate: int = 0,
        finetune_steps: int = 20, train_limit: int = 0, device: str = "cpu", seed: int = 0,
        progress: Any = None) -> list[dict]:
    """One row per configuration: test accuracy of the fp32-trained network in it, and after
    `finetune_steps` steps of fine-tuning in it. evaluate / train_limit: use the first N test /
    training images (0: all)."""
    import torch

    from lowprec import nn as lnn
    from lowprec.sims.resnet import resnet18

    xtr, ytr, xte, yte = load(data, seed)
    if train_limit:
        xtr, ytr = xtr[:train_limit], ytr[:train_limit]
    if evaluate:
        xte, yte = xte[:evaluate], yte[:evaluate]
    classes = int(max(ytr.max(), yte.max())) + 1
    dev = torch.device(device)
    xtr_t, ytr_t = torch.from_numpy(xtr).to(dev), torch.from_numpy(ytr).to(dev)
    xte_t, yte_t = torch.from_numpy(xte).to(dev), torch.from_numpy(yte).to(dev)
    base = resnet18(classes, width, seed=seed).to(dev)
    batch = 64
    train(base, xtr_t, ytr_t, epochs * -(-len(xtr) // batch), batch, 0.05, seed)
    rows = []
    for name in configs:
        t0 = time.perf_counter()
        model = copy.deepcopy(base)
        spec = spec_of(CONFIGS[name])
        if spec:
            lnn.swap(model, spec)
        before = accuracy(model, xte_t, yte_t)
        train(model, xtr_t, ytr_t, finetune_steps, 32, 0.005, seed + 1)
        after = accuracy(model, xte_t, yte_t)
        rows.append({"configuration": name, "accuracy": before, "accuracy_finetuned": after,
                     "finetune_steps": finetune_steps, "test_images": len(xte), "width": width,
                     "seconds": round(time.perf_counter() - t0, 2)})
        if progress:
            progress(rows[-1])
    return rows


def write_plot(rows: list[dict], path: Path) -> None:
    """Test accuracy per configuration, before and after fine-tuning."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.6))
    pos = np.arange(len(rows))
    ax.bar(pos - 0.2, [r["accuracy"] for r in rows], 0.4, label="trained in fp32, evaluated in the configuration")
    ax.bar(pos + 0.2, [r["accuracy_finetuned"] for r in rows], 0.4,
           label=f"after {rows[0]['finetune_steps']} fine-tuning steps in it")
    ax.set_xticks(pos, [r["configuration"] for r in rows], rotation=20, ha="right", fontsize=7)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title(f"ResNet-18 (width {rows[0]['width']}), {rows[0]['test_images']} test images", fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from lowprec.cli import DefaultsHelp

    ap = argparse.ArgumentParser(prog="lowprec accumulation", description=__doc__.split("\n")[0],
                                 formatter_class=DefaultsHelp)
    ap.add_argument("--out", default="accumulation-out", help="folder for accumulation.csv and accumulation.png")
    ap.add_argument("--data", help="CIFAR-10's binary batches or an ImageFolder tree (default: digits, embedded)")
    ap.add_argument("--configs", help="comma-separated configurations (default: all): " + "; ".join(CONFIGS))
    ap.add_argument("--epochs", type=int, default=10, help="fp32 training epochs (>= 1)")
    ap.add_argument("--width", type=int, help="the network's first stage width (default: 64 on a GPU, 16 on a CPU)")
    ap.add_argument("--eval", type=int, default=0, help="test images to evaluate (0: all)")
    ap.add_argument("--finetune-steps", type=int, default=20, help="fine-tuning steps per configuration (>= 0)")
    ap.add_argument("--train-limit", type=int, default=0, help="training images to use (0: all)")
    ap.add_argument("--device", help="cpu or cuda (default: cuda where present)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and batches")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON (for scripts)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    args = ap.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") or (device == "cuda" and not torch.cuda.is_available()):
        ap.error(f"--device must be cpu or cuda (with a GPU present); got {device!r}")
    configs, unknown = (list(CONFIGS), []) if not args.configs else parse_choices(args.configs, list(CONFIGS))
    if unknown:
        ap.error(f"unknown --configs {unknown}; known: {'; '.join(CONFIGS)}")
    for flag, value, least in (("--epochs", args.epochs, 1), ("--width", args.width, 1), ("--eval", args.eval, 0),
                               ("--finetune-steps", args.finetune_steps, 0), ("--train-limit", args.train_limit, 0)):
        if value is not None and value < least:
            ap.error(f"{flag} must be >= {least}; got {value}")
    width = args.width or (64 if device == "cuda" else 16)
    out = Path(args.out)
    progress = None if args.quiet or args.json else (
        lambda r: print(f"{r['configuration']:<44} accuracy {r['accuracy']:.3f}, fine-tuned {r['accuracy_finetuned']:.3f}"
                        f"  ({r['seconds']:.0f} s)", flush=True))

    def work():
        check_writable(out)
        rows = run(configs, data=args.data, epochs=args.epochs, width=width, evaluate=args.eval,
                   finetune_steps=args.finetune_steps, train_limit=args.train_limit, device=device, seed=args.seed,
                   progress=progress)
        atomic_csv(out / "accumulation.csv", rows)
        plotted = has_matplotlib()
        if plotted:
            write_plot(rows, out / "accumulation.png")
        return rows, plotted

    status, result = run_study("lowprec accumulation", args.debug, work)
    if status:
        return status
    rows, plotted = result
    report(rows, args.json, args.quiet, f"wrote {out / 'accumulation.csv'}" + (
        f" and {out / 'accumulation.png'}" if plotted else " (no plot: pip install matplotlib)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
