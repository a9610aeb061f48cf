"""The swamping study: how long sums lose their small terms in narrow accumulators.

Sums of the first N values (N = 2**lo ... 2**hi) of a fixed stream from U(0, 1), N(0, 1) or all
ones, accumulated by lowprec.MAC in each accumulator format, sequentially, in chunks and pairwise,
against the exact sum (math.fsum). Writes ``swamping.csv`` (one row per distribution, accumulator,
order and N: the sum, the exact sum, the relative error) and ``swamping.png`` (relative error vs N,
one line per configuration, a panel per distribution), each written to a temporary file and renamed,
so a result is complete or absent. The stream is float32 (so every term is exact in float32).

Run: ``python -m lowprec.sims.swamping --out DIR`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np

from lowprec import MAC
from lowprec.sims.output import atomic_write

DISTRIBUTIONS = ("uniform", "normal", "ones")
ACCUMULATORS = ("fp32", "fp16", "bf16", "dlfloat16")
CHUNKS = (16, 64, 256, 1024)


def stream(distribution: str, n: int, seed: int = 0) -> np.ndarray:
    """The first n values of the study's fixed float32 stream for a distribution."""
    rng = np.random.default_rng(seed)
    if distribution == "uniform":
        return rng.uniform(0, 1, n).astype(np.float32)
    if distribution == "normal":
        return rng.standard_normal(n).astype(np.float32)
    if distribution == "ones":
        return np.ones(n, np.float32)
    raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}; got {distribution!r}")


def configurations(chunks=CHUNKS) -> list[tuple[str, dict]]:
    """(label, MAC keyword arguments) for each accumulation order of the study."""
    configs = [("sequential", {})]
    configs += [(f"chunk {c}", {"chunk": c}) for c in chunks]
    configs.append(("pairwise", {"order": "pairwise"}))
    return configs


def run(lo: int = 6, hi: int = 22, distributions=DISTRIBUTIONS, accumulators=ACCUMULATORS, chunks=CHUNKS,
        seed: int = 0, progress: bool = True) -> list[dict]:
    """Every cell of the study, as dicts (distribution, acc, order, n, sum, exact, rel_error)."""
    sizes = [2**e for e in range(lo, hi + 1)]
    cells = [(d, a, label, kw, n) for d in distributions for a in accumulators
             for label, kw in configurations(chunks) for n in sizes]
    bar = _progress(len(cells), progress)
    rows = []
    data = {d: stream(d, sizes[-1], seed) for d in distributions}
    exact = {d: {n: math.fsum(data[d][:n].astype(np.float64)) for n in sizes} for d in distributions}
    for d, acc, label, kw, n in cells:
        total = float(MAC(acc=acc, **kw).sum(data[d][:n]))
        ref = exact[d][n]
        rows.append({"distribution": d, "acc": acc, "order": label, "n": n, "sum": total, "exact": ref,
                     "rel_error": abs(total - ref) / abs(ref) if ref else abs(total)})
        bar.update(1)
    bar.close()
    return rows


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc="swamping", unit="sum")


def write_csv(rows: list[dict], path: Path) -> None:
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


def write_plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dists = sorted({r["distribution"] for r in rows}, key=DISTRIBUTIONS.index)
    fig, axes = plt.subplots(1, len(dists), figsize=(6 * len(dists), 5), squeeze=False)
    for ax, d in zip(axes[0], dists):
        keys = sorted({(r["acc"], r["order"]) for r in rows if r["distribution"] == d})
        accs = sorted({acc for acc, _ in keys})
        orders = [label for label, _ in configurations(sorted({int(o.split()[1]) for _, o in keys if o.startswith("chunk")}))]
        styles = ["-", "--", "-.", ":", (0, (1, 1)), (0, (5, 1, 1, 1)), (0, (3, 1, 1, 1, 1, 1))]
        for acc, order in keys:  # colour: accumulator; line style: order
            pts = sorted((r["n"], r["rel_error"]) for r in rows
                         if r["distribution"] == d and r["acc"] == acc and r["order"] == order)
            ns, errs = zip(*pts)
            ax.plot(ns, np.maximum(errs, 1e-12), marker=".", linewidth=1, color=f"C{accs.index(acc)}",
                    linestyle=styles[orders.index(order) % len(styles)], label=f"{acc} {order}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("N (terms summed)")
        ax.set_ylabel("relative error vs exact sum (floored at 1e-12)")
        ax.set_title(f"{d}")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][-1].legend(fontsize=6, ncol=2, loc="upper left")
    fig.suptitle("Swamping: sums of N terms in narrow accumulators")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lowprec.sims.swamping", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="swamping-out", help="folder for swamping.csv and swamping.png")
    ap.add_argument("--min-log2", type=int, default=6, help="smallest N as a power of two (default 6)")
    ap.add_argument("--max-log2", type=int, default=22, help="largest N as a power of two (default 22)")
    ap.add_argument("--acc", nargs="+", default=list(ACCUMULATORS), help="accumulator formats")
    ap.add_argument("--dist", nargs="+", default=list(DISTRIBUTIONS), choices=DISTRIBUTIONS)
    ap.add_argument("--chunks", nargs="+", type=int, default=list(CHUNKS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    if not 0 <= args.min_log2 <= args.max_log2 <= 26:
        ap.error("need 0 <= --min-log2 <= --max-log2 <= 26")
    rows = run(args.min_log2, args.max_log2, args.dist, args.acc, args.chunks, args.seed, not args.quiet)
    out = Path(args.out)
    write_csv(rows, out / "swamping.csv")
    write_plot(rows, out / "swamping.png")
    if args.json:
        import json

        print(json.dumps(rows, indent=1))
    elif not args.quiet:
        print(f"wrote {out / 'swamping.csv'} and {out / 'swamping.png'} ({len(rows)} sums)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
