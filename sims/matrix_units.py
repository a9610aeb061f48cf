"""Long reductions in a matrix unit: relative error of fp8 GEMMs against K for the modelled H100/H200
fp8 tensor core (lowprec.mac_units "h100_fp8") chained over K, with its partial sums promoted to
fp32 every N products (DeepSeek-V3, arXiv:2412.19437 section 3.3.2; cuBLAS), and with fp32
accumulation rounded after every product, against the exact product (float64).

Writes matrix_units.csv (one row per K, distribution and configuration: median and largest relative
error over the 64 x 64 outputs) and matrix_units.png, each complete or absent. Where the H200
recordings (../shared/oracles/h200-mma/long-k, or --recordings) are present, the plot also shows the
hardware's errors, and the summary says which promotion interval reproduces the recorded cuBLAS
outputs bit for bit. Usage: lowprec matrix-units [--out DIR] [--max-log2 13] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lowprec
from lowprec.sims.output import atomic_csv, atomic_write, check_writable, has_matplotlib, run_study

DISTRIBUTIONS = ("normal", "positive")
INTERVALS = (32, 128, 512)  # promotion intervals tried against the recordings
RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "h200-mma" / "long-k"


def operands(distribution: str, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """64 x K and K x 64 fp8 e4m3fn operands: N(0, 1) or U(0, 1) values rounded to the format."""
    rng = np.random.default_rng([seed, k, DISTRIBUTIONS.index(distribution)])
    draw = rng.standard_normal if distribution == "normal" else rng.random
    return (lowprec.quantize(draw((64, k)).astype(np.float32), "fp8_e4m3fn"),
            lowprec.quantize(draw((k, 64)).astype(np.float32), "fp8_e4m3fn"))


def configurations() -> dict[str, lowprec.MAC]:
    units = {"h100_fp8 unit, chained over K": lowprec.mac_units.get("h100_fp8", inputs="fp8_e4m3fn")}
    for n in (128, 32):
        units[f"h100_fp8 unit, promoted to fp32 every {n}"] = lowprec.mac_units.get(
            "h100_fp8", inputs="fp8_e4m3fn", chunk=n, chunk_acc="fp32")
    units["fp32, rounded after every product"] = lowprec.MAC(acc="fp32")
    return units


def errors(d: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(median, largest) relative error over the outputs whose exact value is nonzero."""
    nonzero = exact != 0
    rel = np.abs(d[nonzero] - exact[nonzero]) / np.abs(exact[nonzero])
    return float(np.median(rel)), float(rel.max())


def run(lo: int = 7, hi: int = 13, seed: int = 0) -> list[dict]:
    rows = []
    for dist in DISTRIBUTIONS:
        for log2k in range(lo, hi + 1):
            k = 1 << log2k
            a, b = operands(dist, k, seed)
            exact = a.astype(np.float64) @ b.astype(np.float64)  # products exact; the float64 sum's error is far below
            for label, mac in configurations().items():
                med, top = errors(mac.matmul(a, b).astype(np.float64), exact)
                rows.append({"distribution": dist, "k": k, "configuration": label, "median_rel_error": med,
                             "max_rel_error": top, "source": "model"})
    return rows


def recorded(folder: Path = RECORDINGS) -> tuple[list[dict], dict]:
    """(rows of the H200's own errors, {"chain": bool, interval: bool}: whether the modelled unit,
    chained or promoted every interval, reproduces the recorded outputs bit for bit)."""
    rows, matches = [], {"chain": True, **{n: True for n in INTERVALS}}
    for dist in DISTRIBUTIONS:
        path = folder / f"longk_e4m3_{dist}.npz"
        if not path.exists():
            return [], {}
        data = np.load(path)
        for case in sorted({key.rsplit("_", 1)[0] for key in data.files}):
            a, b = data[f"{case}_a"], data[f"{case}_b"]
            exact = a.astype(np.float64) @ b.astype(np.float64)
            for kind, label in (("chain", "H200 matrix unit alone (recorded)"), ("cublas", "H200 cuBLAS (recorded)")):
                med, top = errors(data[f"{case}_{kind}"].astype(np.float64), exact)
                rows.append({"distribution": dist, "k": a.shape[1], "configuration": label, "median_rel_error": med,
                             "max_rel_error": top, "source": "recording"})
            chained = lowprec.mac_units.get("h100_fp8", inputs="fp8_e4m3fn").matmul(a, b)
            matches["chain"] &= bool(np.array_equal(chained, data[f"{case}_chain"]))
            for n in INTERVALS:
                promoted = lowprec.mac_units.get("h100_fp8", inputs="fp8_e4m3fn", chunk=n, chunk_acc="fp32").matmul(a, b)
                matches[n] &= bool(np.array_equal(promoted, data[f"{case}_cublas"]))
    return rows, matches


def summary(matches: dict) -> str:
    if not matches:
        return "no H200 recordings found: model only"
    hits = [n for n in INTERVALS if matches[n]]
    chain = "reproduces" if matches["chain"] else "does NOT reproduce"
    cublas = (f"promotion to fp32 every {', '.join(map(str, hits))} products reproduces the recorded cuBLAS outputs "
              "bit for bit" if hits else "no promotion interval tried reproduces the recorded cuBLAS outputs")
    others = [n for n in INTERVALS if not matches[n]]
    return (f"the modelled h100_fp8 unit chained over K {chain} the recorded matrix-unit chain bit for bit; {cublas}"
            + (f" (every {', '.join(map(str, others))}: not)" if others and hits else ""))


def write_csv(rows: list[dict], path: Path) -> None:
    atomic_csv(path, rows)


def write_plot(rows: list[dict], path: Path, note: str) -> None:
    """Median relative error vs K, a panel per distribution; recordings as unconnected markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r["configuration"] for r in rows))
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(DISTRIBUTIONS), figsize=(12, 4.8), squeeze=False)
    for ax, dist in zip(axes[0], DISTRIBUTIONS):
        for i, label in enumerate(labels):
            pts = sorted((r["k"], r["median_rel_error"]) for r in rows
                         if r["distribution"] == dist and r["configuration"] == label)
            if not pts:
                continue
            ks, errs = zip(*pts)
            hw = "recorded" in label
            ax.plot(ks, np.maximum(errs, 1e-12), color=colours(i), label=label, linestyle="none" if hw else "-",
                    marker="x" if hw else "o", markersize=7 if hw else 3, linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("K (products per output)")
        ax.set_title(f"{dist} operands (fp8 e4m3fn)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("median relative error vs exact (floored at 1e-12)")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=7, loc="lower center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 0.04))
    fig.suptitle("fp8 GEMM accumulation in an H100/H200 matrix unit", fontsize=11)
    fig.text(0.5, 0.005, note, ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from lowprec.cli import DefaultsHelp

    ap = argparse.ArgumentParser(prog="lowprec matrix-units", description=__doc__.split("\n")[0],
                                 formatter_class=DefaultsHelp)
    ap.add_argument("--out", default="matrix-units-out", help="folder for matrix_units.csv and matrix_units.png")
    ap.add_argument("--min-log2", type=int, default=7, help="smallest K as a power of two")
    ap.add_argument("--max-log2", type=int, default=13, help="largest K as a power of two (at most 16)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the operands")
    ap.add_argument("--recordings", default=str(RECORDINGS), help="folder of the H200 long-K recordings, if any")
    ap.add_argument("--quiet", action="store_true", help="no summary")
    ap.add_argument("--json", action="store_true", help="print the rows and the summary as JSON (for scripts)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    args = ap.parse_args(argv)
    if not 1 <= args.min_log2 <= args.max_log2 <= 16:
        ap.error("need 1 <= --min-log2 <= --max-log2 <= 16")
    out = Path(args.out)

    def work():
        check_writable(out)
        rows = run(args.min_log2, args.max_log2, args.seed)
        hw_rows, matches = recorded(Path(args.recordings))
        rows += hw_rows
        note = summary(matches)
        write_csv(rows, out / "matrix_units.csv")
        plotted = has_matplotlib()
        if plotted:
            write_plot(rows, out / "matrix_units.png", note)
        return rows, note, plotted

    status, result = run_study("lowprec matrix-units", args.debug, work)
    if status:
        return status
    rows, note, wrote_plot = result
    if args.json:
        import json

        print(json.dumps({"rows": rows, "summary": note}, indent=1))
    elif not args.quiet:
        print(note)
        print(f"wrote {out / 'matrix_units.csv'}" + (f" and {out / 'matrix_units.png'}" if wrote_plot else
                                                     " (no plot: pip install matplotlib)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
