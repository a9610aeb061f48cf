"""The accuracy study: train and evaluate the digits CNN (or one on MNIST IDX files) under a grid of
format specs, with the cost model's energy per inference of each trained model.

Each cell is (preset name, epochs, seed); it writes ``cells/<slug>.json`` in the output folder (a temp
file, then a rename) with its accuracy, loss per epoch, energy per inference (pJ), seconds and seed.
``--resume`` skips cells whose file holds a result computed with the same settings (preset, epochs,
seed, data), so an interrupted sweep continues where it stopped; other cells run again. Cells
run on a local process pool, or on a dask.distributed cluster (``scheduler="local"`` for a
LocalCluster, or an address); a cell's result depends only on its own arguments (single-threaded
torch, seeded split, initialisation and batch order), so whichever runs it gives the same numbers.

On a SLURM cluster: start a scheduler with dask-jobqueue (``SLURMCluster(cores=2, memory="4GB")``,
``cluster.scale(jobs=8)``) and pass its ``cluster.scheduler_address`` as ``--scheduler``.
"""

from __future__ import annotations

import json
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from lowprec.mac import approx
from lowprec.sims.output import atomic_text, atomic_write

_FP8 = {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "grad": "fp8_e5m2"}

#: name -> (swap spec or "ptq", cost spec, bits per weight for the accuracy-vs-bits plot). The names
#: need no quoting in a shell; ALIASES keeps the earlier labels working.
PRESETS: dict[str, tuple[Any, dict, int]] = {
    "fp32": (None, {"weight": "fp32", "input": "fp32", "acc": "fp32"}, 32),
    "fp16": ({k: {"weight": "fp16", "input": "fp16", "grad": "fp16"} for k in ("Conv2d", "Linear")},
             {"weight": "fp16", "input": "fp16", "acc": "fp16"}, 16),
    "bf16": ({k: {"weight": "bf16", "input": "bf16", "grad": "bf16"} for k in ("Conv2d", "Linear")},
             {"weight": "bf16", "input": "bf16", "acc": "fp32"}, 16),
    "fp8-fp16-chunk-acc": ({k: dict(_FP8, mac={"mode": "mac", "acc": "fp16", "chunk": 16, "chunk_acc": "fp32"})
                              for k in ("Conv2d", "Linear")},
                             {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "acc": "fp16"}, 8),
    "int8-ptq": ("ptq", {"weight": "int8-calibrated", "input": "int8-calibrated", "acc": "int32"}, 8),
    # Mitchell's logarithmic multiplier on fp8 values, trained straight through its products (ApproxTrain,
    # AdaPT); priced as what it is built from: one add of the operands' 8-bit log codes (Mitchell 1962)
    "fp8-mitchell": ({k: dict(_FP8, mac={"mode": "mac", "mul": approx.mitchell_fp, "acc": "fp32"})
                      for k in ("Conv2d", "Linear")},
                     {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "acc": "fp32", "mul_as": ("add", "int8")}, 8),
    "ternary-qat": ({"Conv2d": {"weight": "ternary", "input": "fp8_e4m3fn"},
                     "Linear": {"weight": "ternary", "input": "fp8_e4m3fn"}, "0": {"weight": "fp8_e4m3fn"}},
                    {"weight": "ternary", "input": "int8-calibrated", "acc": "int32"}, 2),
}


ALIASES = {"fp8 (fp16 chunk acc)": "fp8-fp16-chunk-acc", "int8 PTQ": "int8-ptq", "ternary QAT": "ternary-qat"}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def resolve(names: str | list[str]) -> list[str]:
    """Preset names from a list or a comma-separated string (spaces around names ignored; earlier
    labels and their slugs accepted); ValueError listing the known names for an unknown one."""
    if isinstance(names, str):
        names = names.split(",")
    by_slug = {slug(n): n for n in PRESETS} | {slug(a): n for a, n in ALIASES.items()}
    out, unknown = [], []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        canonical = name if name in PRESETS else ALIASES.get(name) or by_slug.get(slug(name))
        (out if canonical else unknown).append(canonical or name)
    if unknown:
        raise ValueError(f"unknown spec(s) {unknown}; known: {', '.join(PRESETS)}")
    if not out:
        raise ValueError(f"no spec given; known: {', '.join(PRESETS)}")
    return out


def load_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST's format: magic 0x0000 0x08 <ndim>, big-endian int32 sizes, uint8 data)."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"IDX file {p} does not exist")
    raw = p.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"IDX file {p}: not an unsigned-byte IDX file (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {p}: truncated header")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) - header != int(np.prod(dims)):
        raise ValueError(f"IDX file {p}: {len(raw) - header} data bytes for dimensions {dims}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _cost_spec(spec: dict):
    from lowprec import cost

    return {k: (cost.calibrated(8) if v == "int8-calibrated" else v) for k, v in spec.items()}


def run_cell(name: str, epochs: int, seed: int, mnist: str | None = None) -> dict[str, Any]:
    """Train, evaluate and price one preset; plain data, so any worker can run it."""
    import torch

    from lowprec import cost
    from lowprec import nn as lnn
    from lowprec.sims import digits

    name = resolve([name])[0]
    torch.set_num_threads(1)
    swap_spec, cost_spec, bits = PRESETS[name]
    data = digits.load(seed) if mnist is None else _mnist(mnist)
    result = digits.train(None if swap_spec == "ptq" else swap_spec, epochs=epochs, seed=seed, data=data)
    model = result.pop("model")
    xtr, _, xte, yte = data
    if swap_spec == "ptq":
        lnn.calibrate(model, [torch.from_numpy(xtr[i:i + 256]) for i in range(0, min(len(xtr), 1024), 256)])
        with torch.no_grad():
            pred = model(torch.from_numpy(xte)).argmax(1).numpy()
        result["accuracy"] = float(np.mean(pred == yte))
    lnn.unswap(model)
    energy = cost.profile(model, torch.from_numpy(xte[:1]), _cost_spec(cost_spec))
    return {"spec": name, "bits": bits, "epochs": epochs, "seed": seed, "accuracy": result["accuracy"],
            "losses": result["losses"], "energy_pj": energy.total_pj, "compute_pj": energy.total("compute_pj"),
            "seconds": result["seconds"], "settings": settings(name, epochs, seed, mnist)}


def _mnist(folder: str):
    f = Path(folder)
    xtr = load_idx(f / "train-images-idx3-ubyte")
    ytr = load_idx(f / "train-labels-idx1-ubyte")
    xte = load_idx(f / "t10k-images-idx3-ubyte")
    yte = load_idx(f / "t10k-labels-idx1-ubyte")
    scale = lambda x: (x.astype(np.float32) / 255.0)[:, None]  # noqa: E731
    return scale(xtr), ytr.astype(np.int64), scale(xte), yte.astype(np.int64)


def settings(name: str, epochs: int, seed: int, mnist: str | None) -> dict[str, Any]:
    """Everything that changes a cell's numbers: --resume reuses a cell only when these match."""
    swap_spec, cost_spec, bits = PRESETS[name]
    data = "digits" if mnist is None else f"mnist:{Path(mnist).resolve()}"
    return {"spec": name, "epochs": epochs, "seed": seed, "data": data,
            "preset": json.loads(json.dumps([swap_spec, cost_spec, bits], default=_stable))}


def _stable(obj: Any) -> str:
    """A print of a spec's function or array that is the same in every process (no addresses)."""
    if callable(obj):
        f = getattr(obj, "py_func", obj)
        return f"function:{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', repr(f))}"
    if isinstance(obj, np.ndarray):
        import hashlib

        return f"array:{obj.dtype}{obj.shape}:{hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()[:16]}"
    return str(obj)


def _reusable(path: Path, wanted: dict) -> bool:
    """Whether the cell file at path holds a complete result computed with the wanted settings."""
    try:
        cell = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return cell.get("settings") == wanted and bool(cell.get("losses"))


def check_arguments(epochs: Any, seed: Any, workers: Any) -> None:
    """Refuse bad values before any work (a cell with no epochs has no loss to report)."""
    for name, value, low in (("epochs", epochs, 1), ("seed", seed, 0), ("workers", workers, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def run_grid(names: list[str], out: str | Path, *, epochs: int = 15, seed: int = 0, resume: bool = False,
             scheduler: str | None = None, workers: int = 2, mnist: str | None = None,
             progress: bool = True) -> list[dict]:
    """Every cell's result (in `names` order), running the missing ones; see the module doc. With
    resume, a cell written with other settings (epochs, seed, data, preset) is computed again."""
    names = resolve(names)
    check_arguments(epochs, seed, workers)
    cells_dir = Path(out) / "cells"
    todo = [n for n in names if not (resume and _reusable(cells_dir / f"{slug(n)}.json", settings(n, epochs, seed, mnist)))]
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="accuracy cells", disable=not progress or not todo)
    if todo:
        if scheduler:
            results = _run_dask(todo, epochs, seed, mnist, scheduler)
            for name, r in zip(todo, results):
                atomic_text(cells_dir / f"{slug(name)}.json", json.dumps(r, indent=2))
                bar.update()
        else:
            # spawn, not fork: a forked child of a process that ran OpenMP (the C core) can hang in libgomp
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context, initializer=_ignore_sigint)
            try:
                slow_first = sorted(todo, key=lambda n: "mac" not in json.dumps(PRESETS[n][0], default=_stable))  # stable
                futures = {pool.submit(run_cell, n, epochs, seed, mnist): n for n in slow_first}
                for fut in as_completed(futures):
                    atomic_text(cells_dir / f"{slug(futures[fut])}.json", json.dumps(fut.result(), indent=2))
                    bar.update()
            except KeyboardInterrupt:  # the finished cells are written; stop the rest now
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
    bar.close()
    return [json.loads((cells_dir / f"{slug(n)}.json").read_text()) for n in names]


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops them (no traceback from every worker)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_dask(names, epochs, seed, mnist, scheduler):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("--scheduler needs dask.distributed (pip install 'dask[distributed]')") from None
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True) if scheduler == "local" else None
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            futures = client.map(run_cell, names, [epochs] * len(names), [seed] * len(names), [mnist] * len(names),
                                 pure=False)
            return client.gather(futures)
    finally:
        if cluster is not None:
            cluster.close()


def write_table(results: list[dict], out: str | Path) -> tuple[Path, Path]:
    """accuracy.csv and accuracy.json of the grid (atomic)."""
    import csv
    import io

    out = Path(out)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["spec", "bits", "accuracy", "final_loss", "energy_pj", "compute_pj", "seconds", "epochs", "seed"])
    for r in results:
        w.writerow([r["spec"], r["bits"], f"{r['accuracy']:.4f}", f"{r['losses'][-1]:.5f}", f"{r['energy_pj']:.1f}",
                    f"{r['compute_pj']:.1f}", f"{r['seconds']:.2f}", r["epochs"], r["seed"]])
    atomic_text(out / "accuracy.csv", buf.getvalue())
    atomic_text(out / "accuracy.json", json.dumps(results, indent=2))
    return out / "accuracy.csv", out / "accuracy.json"


def plot(results: list[dict], out: str | Path) -> list[Path]:
    """accuracy_vs_bits.png, energy_vs_accuracy.png (Pareto front marked) and loss_curves.png. Specs
    are told apart by colour and marker in a legend (labels written beside points overlap where two
    specs cost alike); a PTQ spec's loss curve is its fp32 training run, drawn dashed and said so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    out = Path(out)
    paths = []
    markers = "osD^vP*Xhp"
    style = {r["spec"]: dict(color=f"C{i % 10}", marker=markers[i % len(markers)]) for i, r in enumerate(results)}

    def save(fig, name):
        fig.tight_layout()
        atomic_write(out / name, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
        plt.close(fig)
        paths.append(out / name)

    def plain_log_axis(axis):  # plain numbers at the decades and 2x/5x, no crowded 3x/4x labels
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in results:
        ax.scatter(r["bits"], 100 * r["accuracy"], s=40, label=r["spec"], **style[r["spec"]])
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set(title="Test accuracy vs weight bits (digits CNN)", xlabel="bits per weight", ylabel="test accuracy (%)")
    ax.legend(fontsize=7, loc="lower right")
    save(fig, "accuracy_vs_bits.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    pts = sorted(((r["energy_pj"], r["accuracy"], r["spec"]) for r in results))
    best, front = -1.0, []
    for e, a, _ in pts:
        if a > best:
            front.append((e, a))
            best = a
    for e, a, spec in pts:
        ax.scatter(e / 1e3, 100 * a, s=40, label=spec, **style[spec])
    ax.plot([e / 1e3 for e, _ in front], [100 * a for _, a in front], "k--", lw=1, label="Pareto front")
    ax.set_xscale("log")
    plain_log_axis(ax.xaxis)
    ax.set(title="Energy per inference vs accuracy", xlabel="energy per inference (nJ, 45 nm model)",
           ylabel="test accuracy (%)")
    ax.legend(fontsize=7, loc="lower right")
    save(fig, "energy_vs_accuracy.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in results:
        ptq = PRESETS.get(r["spec"], (None,))[0] == "ptq"
        label = f"{r['spec']} (the fp32 training run, calibrated after)" if ptq else r["spec"]
        ax.plot(range(1, len(r["losses"]) + 1), r["losses"], label=label, color=style[r["spec"]]["color"],
                marker=style[r["spec"]]["marker"], markersize=3, linestyle="--" if ptq else "-",
                linewidth=2.5 if r["spec"] == "fp32" else 1.2, zorder=1 if r["spec"] == "fp32" else 2)
    ax.set_yscale("log")
    ax.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy (nats)")
    ax.legend(fontsize=7)
    save(fig, "loss_curves.png")
    return paths
