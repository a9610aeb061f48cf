"""Mixed precision: per-layer format choice under a budget, after the hardware-aware idea of HAQ
(Wang et al., CVPR 2019), by post-training quantization of a trained model (no retraining per choice).

Each Linear/Conv layer takes one rung of a format ladder for its weights and inputs (``LADDER``:
fp32, bf16, fp8_e4m3fn, int8, int4; the integer rungs calibrated per layer as lowprec.nn.calibrate
fits them: inputs asymmetric per tensor by min-max, weights symmetric per output channel). A choice is
evaluated by its test accuracy (the model swapped in fake mode) and priced by lowprec.cost.profile:
energy per inference (pJ; integer layers accumulate in int32, others in fp32), weight storage (bits) or
roofline latency on a device (s).

- ``sensitivity(model, data)``: the accuracy drop when one layer at a time takes each lower rung (the
  others fp32), and optionally HAWQ-V2's score (Dong et al., NeurIPS 2020): the layer's average Hessian
  trace (Hutchinson's estimator, Rademacher probes from `seed`) times the squared weight perturbation of
  its lowest rung.
- ``search(model, data, metric, budget)``: every assignment where the ladder's rungs to the power of the
  layers stay within `exhaustive` (3 layers x 5 rungs: 125), else greedy (lower, one rung at a time,
  the layer whose step saves the most cost per accuracy lost, keeping accuracy within `tolerance` of
  fp32's); the Pareto front of cost and accuracy; the choice: the cheapest within `tolerance` of fp32,
  or with `budget`, the most accurate within it.

``lowprec sensitivity`` and ``lowprec mixed`` run them on the digits CNN (trained 15 epochs in fp32),
writing CSV, a TOML swap spec of the choice (lowprec.nn.swap reads it back) and an accuracy-vs-cost
plot with the Pareto front, each complete or absent.
"""

from __future__ import annotations

import argparse
import copy
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from lowprec.sims.output import atomic_csv, atomic_text, atomic_write, check_writable, has_matplotlib, report, run_study

LADDER = ("fp32", "bf16", "fp8_e4m3fn", "int8", "int4")
METRICS = ("energy", "size", "latency")
UNITS = {"energy": "pJ", "size": "bits", "latency": "s"}


class Problem:
    """A trained model, its data, and how to evaluate and price a per-layer assignment of rungs."""

    def __init__(self, model: Any, data: tuple, *, ladder: tuple = LADDER, device: str = "h100_sxm",
                 calibration: int = 256) -> None:
        import torch

        from lowprec.nn.calibration import observe_formats

        self.model, self.ladder, self.device = model, tuple(ladder), device
        xtr, _, xte, yte = data
        self.x, self.y = torch.from_numpy(xte), torch.from_numpy(yte)
        self.example = torch.from_numpy(xte[:1])
        self.layers = [n for n, m in model.named_modules()
                       if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d))]
        batches = [torch.from_numpy(xtr[i:i + 64]) for i in range(0, min(len(xtr), calibration), 64)]
        self.fitted = {bits: observe_formats(model, batches, bits=bits, weight_bits=bits) for bits in (8, 4)
                       if f"int{bits}" in self.ladder}
        self._cache: dict = {}

    def formats(self, layer: str, rung: str) -> tuple:
        """(input, weight) formats of a rung for a layer."""
        if rung in ("int8", "int4"):
            return self.fitted[int(rung[3:])][layer]
        return rung, rung

    def spec(self, assignment: tuple) -> dict:
        """The lowprec.nn.swap spec of an assignment (exact layer names)."""
        out = {}
        for layer, rung in zip(self.layers, assignment):
            if rung != "fp32":
                fin, fw = self.formats(layer, rung)
                out[layer] = {"input": fin, "weight": fw}
        return out

    def evaluate(self, assignment: tuple) -> dict:
        """accuracy, energy (pJ), size (weight bits) and latency (s) of an assignment (cached)."""
        if assignment in self._cache:
            return self._cache[assignment]
        import torch

        from lowprec import cost
        from lowprec import nn as lnn

        model = copy.deepcopy(self.model)
        spec = self.spec(assignment)
        if spec:
            lnn.swap(model, spec)
        model.eval()
        with torch.no_grad():
            logits = model(self.x)
            accuracy = float((logits.argmax(1) == self.y).float().mean())
            loss = float(torch.nn.functional.cross_entropy(logits, self.y))
        acc = {layer: {"acc": "int32"} for layer, rung in zip(self.layers, assignment) if rung.startswith("int")}
        priced = cost.profile(model, self.example, {"layers": acc} if acc else None, device=self.device)
        row = {"assignment": assignment, "accuracy": accuracy, "loss": loss, "energy": priced.total_pj,
               "size": priced.total("weight_bits"), "latency": priced.latency_s}
        self._cache[assignment] = row
        return row


def sensitivity(problem: Problem, *, hessian: bool = False, samples: int = 8, seed: int = 0) -> list[dict]:
    """One row per layer: the accuracy drop and the test-loss increase at each lower rung (the other
    layers in fp32), the rank (1: most sensitive) by the drop at the lowest rung, then its loss increase,
    or with `hessian` by HAWQ-V2's score."""
    base = problem.evaluate(("fp32",) * len(problem.layers))
    rows = []
    for i, layer in enumerate(problem.layers):
        row: dict = {"layer": layer}
        for rung in problem.ladder[1:]:
            r = problem.evaluate(tuple(rung if j == i else "fp32" for j in range(len(problem.layers))))
            row[f"drop_{rung}"] = round(base["accuracy"] - r["accuracy"], 6)
            row[f"dloss_{rung}"] = round(r["loss"] - base["loss"], 6)
        rows.append(row)
    if hessian:
        for row, score in zip(rows, hawq_scores(problem, samples, seed)):
            row["hawq"] = score
    low = problem.ladder[-1]
    key = (lambda r: (-r["hawq"], r["layer"])) if hessian else (
        lambda r: (-r[f"drop_{low}"], -r[f"dloss_{low}"], r["layer"]))
    for rank, row in enumerate(sorted(rows, key=key), start=1):
        row["rank"] = rank
    return rows


def hawq_scores(problem: Problem, samples: int, seed: int) -> list[float]:
    """Tr(H)/n * ||Q(W) - W||^2 per layer, Q its lowest rung's weight format (HAWQ-V2, eq. 6); the trace
    by Hutchinson's estimator over `samples` Rademacher probes (the training loss on the test inputs)."""
    import torch

    import lowprec

    model = copy.deepcopy(problem.model).eval()
    modules = dict(model.named_modules())
    params = [modules[n].weight for n in problem.layers]
    loss = torch.nn.functional.cross_entropy(model(problem.x), problem.y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gen = torch.Generator().manual_seed(seed)
    traces = [0.0] * len(params)
    for _ in range(samples):
        probes = [torch.randint(0, 2, p.shape, generator=gen).float() * 2 - 1 for p in params]
        hv = torch.autograd.grad(grads, params, probes, retain_graph=True)
        for i, (h, v) in enumerate(zip(hv, probes)):
            traces[i] += float((h * v).sum()) / samples
    scores = []
    for layer, w, tr in zip(problem.layers, params, traces):
        fmt = problem.formats(layer, problem.ladder[-1])[1]
        wq = torch.from_numpy(np.asarray(lowprec.quantize(w.detach().double().numpy(), fmt)))
        scores.append(tr / w.numel() * float(((wq - w.detach().double()) ** 2).sum()))
    return scores


def pareto(rows: list[dict], metric: str) -> list[dict]:
    """The rows no other row beats in both cost (lower) and accuracy (higher), by cost."""
    front, best = [], -1.0
    for r in sorted(rows, key=lambda r: (r[metric], -r["accuracy"])):
        if r["accuracy"] > best:
            front.append(r)
            best = r["accuracy"]
    return front


def search(problem: Problem, *, metric: str = "energy", budget: float | None = None, tolerance: float = 0.005,
           exhaustive: int = 4096) -> tuple[dict, list[dict], list[dict]]:
    """(choice, every evaluated row, the Pareto front); see the module doc."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}; got {metric!r}")
    n = len(problem.layers)
    base = problem.evaluate(("fp32",) * n)
    if len(problem.ladder) ** n <= exhaustive:
        rows = [problem.evaluate(a) for a in itertools.product(problem.ladder, repeat=n)]
    else:
        rows = _greedy(problem, metric, base["accuracy"] - tolerance)
    front = pareto(rows, metric)
    if budget is not None:
        within = [r for r in rows if r[metric] <= budget]
        if not within:
            closest = min(rows, key=lambda r: r[metric])
            raise ValueError(f"no assignment meets {metric} <= {budget:g} {UNITS[metric]}; the closest: "
                             f"{closest[metric]:g} {UNITS[metric]} with {dict(zip(problem.layers, closest['assignment']))}")
        choice = max(within, key=lambda r: (r["accuracy"], -r[metric]))
    else:
        good = [r for r in rows if r["accuracy"] >= base["accuracy"] - tolerance]
        choice = min(good, key=lambda r: (r[metric], -r["accuracy"]))
    return choice, rows, front


def _greedy(problem: Problem, metric: str, floor: float) -> list[dict]:
    current = ("fp32",) * len(problem.layers)
    rows = [problem.evaluate(current)]
    while True:
        moves = []
        for i, rung in enumerate(current):
            k = problem.ladder.index(rung)
            if k + 1 < len(problem.ladder):
                cand = current[:i] + (problem.ladder[k + 1],) + current[i + 1:]
                row = problem.evaluate(cand)
                rows.append(row)
                if row["accuracy"] >= floor:
                    here = problem.evaluate(current)
                    saving = here[metric] - row[metric]
                    lost = max(here["accuracy"] - row["accuracy"], 1e-9)
                    moves.append((saving / lost, cand))
        if not moves:
            return rows
        current = max(moves)[1]


def uniform(problem: Problem, rung: str) -> dict:
    return problem.evaluate((rung,) * len(problem.layers))


def spec_toml(problem: Problem, assignment: tuple) -> str:
    """The choice as a TOML lowprec.nn.swap spec (fitted formats as their fields)."""
    from lowprec.formats import to_fields

    def value(v):
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        return repr(v)

    lines = ["# lowprec mixed: per-layer formats (lowprec.nn.swap(model, 'this file'))"]
    for layer, settings in problem.spec(assignment).items():
        lines.append(f'\n["{layer}"]')
        for key, fmt in settings.items():
            lines.append(f"{key} = {value(to_fields(fmt))}")
    return "\n".join(lines) + "\n"


def write_plot(rows: list[dict], front: list[dict], marks: dict, metric: str, path: Path) -> None:
    """Accuracy against cost of every evaluated assignment, the Pareto front and marked points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter([r[metric] for r in rows], [r["accuracy"] for r in rows], s=10, color="0.7", label="assignments")
    ax.plot([r[metric] for r in front], [r["accuracy"] for r in front], "-o", color="C0", ms=4, label="Pareto front")
    for i, (label, r) in enumerate(marks.items()):
        ax.scatter([r[metric]], [r["accuracy"]], s=60, marker="*^sDv"[i % 5], color=f"C{i + 1}", label=label, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel(f"{metric} per inference ({UNITS[metric]})" if metric != "size" else "weight storage (bits)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Per-layer formats of the digits CNN", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def digits_problem(epochs: int = 15, seed: int = 0, device: str = "h100_sxm") -> Problem:
    """The digits CNN trained in fp32 (lowprec.sims.digits), its split of `seed`."""
    from lowprec.sims import digits

    data = digits.load(seed)
    model = digits.train(None, epochs=epochs, seed=seed, data=data)["model"]
    return Problem(model, data, device=device)


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--epochs", type=int, default=15, help="fp32 training epochs of the digits CNN (>= 1)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and batches")
    ap.add_argument("--quiet", action="store_true", help="no table")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON (for scripts)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")


def main_sensitivity(argv: list[str] | None = None) -> int:
    from lowprec.cli import DefaultsHelp

    ap = argparse.ArgumentParser(prog="lowprec sensitivity", formatter_class=DefaultsHelp,
                                 description="The accuracy drop of the digits CNN when one layer at a time takes "
                                             "a lower format (CSV)")
    ap.add_argument("--out", default="sensitivity-out", help="folder for sensitivity.csv")
    ap.add_argument("--hessian", action="store_true", help="also HAWQ-V2's Hessian-trace score (ranks by it)")
    _common(ap)
    args = ap.parse_args(argv)
    if args.epochs < 1:
        ap.error(f"--epochs must be >= 1; got {args.epochs}")
    out = Path(args.out)

    def work():
        check_writable(out)
        rows = sensitivity(digits_problem(args.epochs, args.seed), hessian=args.hessian, seed=args.seed)
        atomic_csv(out / "sensitivity.csv", rows)
        return rows

    status, rows = run_study("lowprec sensitivity", args.debug, work)
    if status:
        return status
    table = "rank  layer   accuracy change (test loss change) with the layer in\n" + "\n".join(
        f"{r['rank']:>4}  {r['layer']:<6} " + "  ".join(f"{k[5:]} {0.0 - v * 100:+.2f}% ({r['dloss_' + k[5:]]:+.4f})"
                                                       for k, v in r.items() if k.startswith("drop_"))
        for r in sorted(rows, key=lambda r: r["rank"]))
    report(rows, args.json, args.quiet, f"{table}\nwrote {out / 'sensitivity.csv'}")
    return 0


def main_mixed(argv: list[str] | None = None) -> int:
    from lowprec.cli import DefaultsHelp

    ap = argparse.ArgumentParser(prog="lowprec mixed", formatter_class=DefaultsHelp,
                                 description="Per-layer formats of the digits CNN under a budget (CSV, TOML spec, PNG)")
    ap.add_argument("--out", default="mixed-out", help="folder for mixed.csv, mixed-spec.toml, mixed.png")
    ap.add_argument("--metric", default="energy", choices=METRICS, help="the cost to minimise or bound")
    ap.add_argument("--budget", type=float, help="the most the cost may be (energy pJ, size bits, latency s); "
                                                 "default: the cheapest within --tolerance of fp32's accuracy")
    ap.add_argument("--tolerance", type=float, default=0.005, help="accuracy below fp32's allowed (0.005: 0.5 points)")
    ap.add_argument("--device", default="h100_sxm", help="device of the latency metric (lowprec.cost.timing)")
    _common(ap)
    args = ap.parse_args(argv)
    if args.epochs < 1:
        ap.error(f"--epochs must be >= 1; got {args.epochs}")
    if not 0 <= args.tolerance < 1:
        ap.error(f"--tolerance must be in [0, 1); got {args.tolerance}")
    out = Path(args.out)

    def work():
        check_writable(out)
        problem = digits_problem(args.epochs, args.seed, args.device)
        choice, rows, front = search(problem, metric=args.metric, budget=args.budget, tolerance=args.tolerance)
        on_front = {r["assignment"] for r in front}
        table = [dict({layer: rung for layer, rung in zip(problem.layers, r["assignment"])},
                      accuracy=r["accuracy"], energy_pj=r["energy"], size_bits=r["size"], latency_s=r["latency"],
                      pareto=r["assignment"] in on_front, chosen=r is choice) for r in rows]
        atomic_csv(out / "mixed.csv", table)
        atomic_text(out / "mixed-spec.toml", spec_toml(problem, choice["assignment"]))
        marks = {"fp32": uniform(problem, "fp32"), "uniform int8": uniform(problem, "int8"), "chosen": choice}
        plotted = has_matplotlib()
        if plotted:
            write_plot(rows, front, marks, args.metric, out / "mixed.png")
        return problem, marks, plotted

    status, result = run_study("lowprec mixed", args.debug, work)
    if status:
        return status
    problem, marks, plotted = result
    lines = [f"{'':<14}{'accuracy':>9}  {'energy pJ':>12}  {'weight bits':>11}  {'latency us':>10}  formats"]
    for label, r in marks.items():
        lines.append(f"{label:<14}{r['accuracy'] * 100:>8.2f}%  {r['energy']:>12,.0f}  {r['size']:>11,}  "
                     f"{r['latency'] * 1e6:>10.4f}  {', '.join(f'{n}={g}' for n, g in zip(problem.layers, r['assignment']))}")
    rows = [dict(label=k, accuracy=v["accuracy"], energy_pj=v["energy"], size_bits=v["size"], latency_s=v["latency"],
                 formats=dict(zip(problem.layers, v["assignment"]))) for k, v in marks.items()]
    report(rows, args.json, args.quiet, "\n".join(lines) + f"\nwrote {out / 'mixed.csv'}, {out / 'mixed-spec.toml'}"
           + (f" and {out / 'mixed.png'}" if plotted else " (no plot: pip install matplotlib)"))
    return 0
