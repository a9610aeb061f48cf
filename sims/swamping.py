"""The swamping study: how long sums lose their small terms in narrow accumulators.

Sums of the first N values (N = 2**lo ... 2**hi) of a fixed stream from U(0, 1), N(0, 1) or all
ones, accumulated by lowprec.MAC in each accumulator format, sequentially, in chunks and pairwise,
against the exact sum (math.fsum). Writes ``swamping.csv`` (one row per distribution, accumulator,
order and N: the sum, the exact sum, the relative error) and ``swamping.png`` (relative error vs N,
one line per configuration, a panel per distribution), each written to a temporary file and renamed,
so a result is complete or absent. The stream is float32 (so every term is exact in float32).

Accumulators are format names (``fp16``), short spellings (``e5m2``, ``e4m3fn``) or format
expressions (``FloatFormat(5, 2)``, ``FixedFormat(16, 8)``); fixed-point accumulators run the
sequential order only (chunks and pairwise trees are float accumulators' configurations).

Run: ``lowprec swamping --out DIR`` or ``python -m lowprec.sims.swamping`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import ast
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from lowprec import MAC, FixedFormat, FloatFormat, formats
from lowprec.sims.output import atomic_csv, atomic_write, check_writable, has_matplotlib, report, run_study

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


_SHORT = re.compile(r"^e(\d+)m(\d+)(fn|fnuz)?$")
_CONSTRUCTORS = {"FloatFormat": FloatFormat, "FixedFormat": FixedFormat}


def parse_acc(text: Any) -> Any:
    """An accumulator format from a name ("fp16"), a short spelling ("e5m2", "e4m3fn": IEEE-style
    unless suffixed) or an expression ("FloatFormat(5, 2)", "FixedFormat(16, 8, overflow='wrap')");
    format objects pass through. ValueError naming the allowed spellings otherwise."""
    if isinstance(text, (FloatFormat, FixedFormat)):
        return text
    text = str(text).strip()
    m = _SHORT.match(text)
    if m:
        return FloatFormat(int(m.group(1)), int(m.group(2)), specials=m.group(3) or "ieee")
    if "(" in text:
        try:
            call = ast.parse(text, mode="eval").body
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in _CONSTRUCTORS):
                raise ValueError
            args = [ast.literal_eval(a) for a in call.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
            return _CONSTRUCTORS[call.func.id](*args, **kwargs)
        except (SyntaxError, ValueError, TypeError) as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise ValueError(f"acc {text!r} is not a FloatFormat(...) or FixedFormat(...) with literal "
                             f"arguments{detail}") from None
    try:
        fmt = formats.get(text)
    except ValueError:
        raise ValueError(f"unknown acc {text!r}: give a format name (lowprec formats), a short spelling "
                         "such as e5m2 or e4m3fn, or FloatFormat(exp_bits, man_bits, ...)") from None
    if not isinstance(fmt, (FloatFormat, FixedFormat)):
        raise ValueError(f"acc {text!r} is not a float or fixed-point format")
    return fmt


def acc_label(fmt: Any) -> str:
    """A short label of an accumulator: its name, else e<E>m<M> (+ specials) or q<I>.<F>."""
    if getattr(fmt, "name", None):
        return fmt.name
    if isinstance(fmt, FixedFormat):
        return f"{'' if fmt.signed else 'u'}q{fmt.bits - fmt.frac_bits}.{fmt.frac_bits}"
    label = f"e{fmt.exp_bits}m{fmt.man_bits}" + ("" if fmt.specials == "ieee" else fmt.specials)
    if fmt.bias != 2 ** (fmt.exp_bits - 1) - 1:
        label += f" bias {fmt.bias}"
    return label


def configurations(chunks=CHUNKS, acc: Any = None) -> list[tuple[str, dict]]:
    """(label, MAC keyword arguments) for each accumulation order of the study (a fixed-point
    accumulator: the sequential order only)."""
    configs = [("sequential", {})]
    if isinstance(acc, FixedFormat):
        return configs
    configs += [(f"chunk {c}", {"chunk": c}) for c in chunks]
    configs.append(("pairwise", {"order": "pairwise"}))
    return configs


def run(lo: int = 6, hi: int = 22, distributions=DISTRIBUTIONS, accumulators=ACCUMULATORS, chunks=CHUNKS,
        seed: int = 0, progress: bool = True) -> list[dict]:
    """Every cell of the study, as dicts (distribution, acc (its label), order, n, sum, exact,
    rel_error). Every accumulator is parsed (parse_acc) before any cell runs."""
    accs = [parse_acc(a) for a in accumulators]
    for d in distributions:
        if d not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}; got {d!r}")
    sizes = [2**e for e in range(lo, hi + 1)]
    cells = [(d, a, label, kw, n) for d in distributions for a in accs
             for label, kw in configurations(chunks, a) for n in sizes]
    bar = _progress(len(cells), progress)
    rows = []
    data = {d: stream(d, sizes[-1], seed) for d in distributions}
    exact = {d: {n: math.fsum(data[d][:n].astype(np.float64)) for n in sizes} for d in distributions}
    for d, acc, label, kw, n in cells:
        total = float(MAC(acc=acc, **kw).sum(data[d][:n]))
        ref = exact[d][n]
        rows.append({"distribution": d, "acc": acc_label(acc), "order": label, "n": n, "sum": total, "exact": ref,
                     "rel_error": abs(total - ref) / abs(ref) if ref else abs(total)})
        bar.update(1)
    bar.close()
    return rows


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc="swamping", unit="sum")


def write_csv(rows: list[dict], path: Path) -> None:
    atomic_csv(path, rows)


def write_plot(rows: list[dict], path: Path) -> None:
    """relative error vs N, a panel per distribution: colour by accumulator, line style and marker by
    order, the legend beside the panels (not over the lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dists = sorted({r["distribution"] for r in rows}, key=DISTRIBUTIONS.index)
    accs = list(dict.fromkeys(r["acc"] for r in rows))
    orders = list(dict.fromkeys(r["order"] for r in rows))
    colours = plt.get_cmap("tab10" if len(accs) <= 10 else "tab20")
    styles = ["-", "--", "-.", ":", (0, (1, 1)), (0, (5, 1, 1, 1)), (0, (3, 1, 1, 1, 1, 1))]
    markers = ["o", "s", "^", "v", "D", "x", "+"]
    fig, axes = plt.subplots(1, len(dists), figsize=(5 * len(dists) + 2.5, 4.6), squeeze=False)
    for ax, d in zip(axes[0], dists):
        for acc in accs:
            for order in orders:
                pts = sorted((r["n"], r["rel_error"]) for r in rows
                             if r["distribution"] == d and r["acc"] == acc and r["order"] == order)
                if not pts:
                    continue
                ns, errs = zip(*pts)
                k = orders.index(order)
                ax.plot(ns, np.maximum(errs, 1e-12), marker=markers[k % len(markers)], markersize=3, linewidth=1,
                        color=colours(accs.index(acc)), linestyle=styles[k % len(styles)], label=f"{acc}, {order}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("N (terms summed)")
        ax.set_title(d)
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("relative error vs exact sum (floored at 1e-12)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6, loc="center left", bbox_to_anchor=(1.0 - 2.4 / fig.get_figwidth(), 0.5),
               ncol=1 if len(labels) <= 30 else 2, frameon=False)
    fig.suptitle("Swamping: sums of N terms in narrow accumulators")
    fig.tight_layout(rect=(0, 0, 1.0 - 2.5 / fig.get_figwidth(), 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from lowprec.cli import DefaultsHelp

    ap = argparse.ArgumentParser(prog="lowprec swamping", description=__doc__.split("\n")[0],
                                 formatter_class=DefaultsHelp)
    ap.add_argument("--out", default="swamping-out", help="folder for swamping.csv and swamping.png")
    ap.add_argument("--min-log2", type=int, default=6, help="smallest N as a power of two")
    ap.add_argument("--max-log2", type=int, default=22, help="largest N as a power of two (at most 26)")
    ap.add_argument("--acc", nargs="+", default=list(ACCUMULATORS),
                    help="accumulator formats: names, e5m2-style spellings or 'FloatFormat(5, 2)'")
    ap.add_argument("--dist", nargs="+", default=list(DISTRIBUTIONS), choices=DISTRIBUTIONS,
                    help="distributions of the terms")
    ap.add_argument("--chunks", nargs="+", type=int, default=list(CHUNKS), help="chunk sizes")
    ap.add_argument("--seed", type=int, default=0, help="seed of the terms' stream")
    ap.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON (for scripts)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    args = ap.parse_args(argv)
    if not 0 <= args.min_log2 <= args.max_log2 <= 26:
        ap.error("need 0 <= --min-log2 <= --max-log2 <= 26")
    if any(c < 1 for c in args.chunks):
        ap.error("--chunks must be positive")
    out = Path(args.out)

    def work():
        for a in args.acc:
            parse_acc(a)
        check_writable(out)
        rows = run(args.min_log2, args.max_log2, args.dist, args.acc, args.chunks, args.seed, not args.quiet)
        write_csv(rows, out / "swamping.csv")
        plotted = has_matplotlib()
        if plotted:
            write_plot(rows, out / "swamping.png")
        return rows, plotted

    status, result = run_study("lowprec swamping", args.debug, work)
    if status:
        return status
    rows, wrote_plot = result
    plot_note = f" and {out / 'swamping.png'}" if wrote_plot else " (no plot: pip install matplotlib)"
    report(rows, args.json, args.quiet, f"wrote {out / 'swamping.csv'}{plot_note} ({len(rows)} sums)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
