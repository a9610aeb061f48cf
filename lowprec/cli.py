"""The ``lowprec`` command (also ``python -m lowprec``).

Subcommands: ``formats`` (the table of named formats, or one format with its code table),
``quantize IN.npy OUT.npy`` (a saved array to a format, with error statistics), ``swamping`` (the
swamping study, lowprec.sims.swamping), ``accuracy`` (a grid of format specs trained and priced on
digits or MNIST, lowprec.sims.accuracy), ``energy`` (the cost model's table for the digits CNN) and
``demo`` (the main job: a small swamping study, the accuracy grid and the energy table in one report
folder). Errors exit with status 2 and one line naming the problem (``--debug`` for a traceback).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from . import formats
from .formats import FixedFormat
from .array import quantize
from .kernels.rounding import ROUNDING_MODES


def _fmt_number(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def format_table() -> str:
    """One line per named format: bits, max, min normal, min subnormal, eps, decimal digits, specials."""
    rows = [("name", "bits", "max", "min_normal", "min_subnormal", "eps", "digits", "inf/nan")]
    for name in formats.names("scalar"):
        f = formats.get(name)
        digits = f"{math.log10(2) * (f.man_bits + 1):.1f}" if not isinstance(f, FixedFormat) else "-"
        specials = f"{f.specials}, overflow={f.overflow}"
        rows.append((name, str(f.bits), _fmt_number(f.max), _fmt_number(f.min_normal),
                     _fmt_number(f.min_subnormal), _fmt_number(f.eps), digits, specials))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def block_table() -> str:
    """One line per named block-scaled format: element, block size, scale format and rule."""
    rows = [("name", "element", "block", "scale", "rule / tensor scale", "bits/element")]
    for name in formats.names("block"):
        f = formats.get(name)
        scale = f.scale if isinstance(f.scale, str) else (f.scale.name or repr(f.scale))
        rule = f.rule if scale == "e8m0" else ("+ fp32 tensor scale" if f.tensor_scale else "-")
        per_element = f.element.bits + (8 if scale == "e8m0" else f.scale.bits) / f.block
        rows.append((name, f.element.name or repr(f.element), str(f.block), str(scale), rule, f"{per_element:g}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
    return (table + "\n\nCodebook and scaled formats are built, not named: LUTFormat(values), LogFormat(bits, k, fsr),"
            "\nBinaryFormat(alpha), TernaryFormat(w_p, w_n, delta), IntAffineFormat(bits, scale, zero_point)"
            " (see the README).")


def code_table(name: str) -> str:
    """Every code of a format of at most 8 bits with its value."""
    f = formats.get(name)
    if f.bits > 8:
        raise ValueError(f"the code table is shown for formats of at most 8 bits; {name} has {f.bits}")
    values = f.decode(f.codes())
    return "\n".join(f"0x{c:02x}  {v!r:>12}" for c, v in zip(f.codes(), values.tolist()))


def embedded_sample(n: int = 100_000, seed: int = 0) -> np.ndarray:
    """A deterministic stand-in for a layer's activations: a heavy-tailed mix (Student t, 3 dof)
    with a few exact boundary values, float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, n).astype(np.float32)
    x[:6] = [0.0, -0.0, 1.0, 448.0, 65504.0, 2.0**-20]
    return x


def error_stats(x: np.ndarray, q: np.ndarray, fmt) -> dict[str, float]:
    """Max/mean absolute and relative error, fraction saturated (|q| == max) and flushed to zero."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    finite = np.isfinite(q64)
    err = np.abs(q64 - x64)[finite]
    nz = (x64 != 0)[finite]
    rel = err[nz] / np.abs(x64[finite][nz])
    return {
        "max_abs": float(err.max()) if err.size else 0.0,
        "mean_abs": float(err.mean()) if err.size else 0.0,
        "max_rel": float(rel.max()) if rel.size else 0.0,
        "mean_rel": float(rel.mean()) if rel.size else 0.0,
        "saturated": float(np.mean(np.abs(q64) >= fmt.max)),
        # inputs beyond the format's range (they saturate, or become Inf or NaN: fn formats have no Inf)
        "overflow": float(np.mean(np.isfinite(x64) & ((x64 > fmt.max) | (x64 < fmt.min)))),
        "flushed": float(np.mean((q64 == 0) & (x64 != 0))),
        "nonfinite": float(np.mean(~np.isfinite(q64))),
    }


def demo(rounding: str = "nearest_even") -> str:
    x = embedded_sample()
    lines = ["The named formats", "", format_table(), "", block_table(), "",
             f"Each format on an embedded sample of {x.size} heavy-tailed activations (Student t, 3 dof), "
             f"rounding={rounding}: errors, and the fractions saturated, flushed to zero, beyond the range "
             "and not finite:", ""]
    header = (f"{'format':<14}{'max_abs':>12}{'mean_abs':>12}{'max_rel':>12}{'mean_rel':>12}{'saturated':>11}"
              f"{'flushed':>9}{'overflow':>10}{'non-finite':>11}")
    lines.append(header)
    for name in formats.names():
        fmt = formats.get(name)
        q = quantize(x, fmt, rounding, seed=0)
        s = error_stats(x, q, fmt)
        lines.append(f"{name:<14}{s['max_abs']:>12.4g}{s['mean_abs']:>12.4g}{s['max_rel']:>12.4g}"
                     f"{s['mean_rel']:>12.4g}{s['saturated']:>11.4f}{s['flushed']:>9.4f}{s['overflow']:>10.4f}"
                     f"{s['nonfinite']:>11.4f}")
    return "\n".join(lines)


def _emit(obj, as_json: bool, text: str) -> None:
    import json

    print(json.dumps(obj, indent=2, default=str) if as_json else text)


def cmd_quantize(args) -> dict:
    src = Path(args.input)
    if not src.exists():
        raise ValueError(f"input file {src} does not exist")
    try:
        x = np.load(src, allow_pickle=False)
    except Exception as exc:  # numpy raises several kinds for a corrupt file
        raise ValueError(f"input file {src} is not a readable .npy array ({exc})") from None
    if x.dtype.kind != "f":
        raise ValueError(f"input file {src} holds {x.dtype}; a float array is needed")
    fmt = formats.get(args.format)
    q = quantize(x.astype(np.float64 if x.dtype == np.float64 else np.float32), fmt, args.rounding, seed=args.seed)
    from .sims.output import atomic_write

    def write(tmp: str) -> None:  # closed before the rename (np.save on a name would add ".npy")
        with open(tmp, "wb") as f:
            np.save(f, q)

    atomic_write(Path(args.output), write)
    stats = error_stats(x, np.asarray(q), fmt)
    return {"input": str(src), "output": args.output, "format": args.format, "rounding": args.rounding, **stats}


def _accuracy_table(results: list[dict]) -> str:
    rows = [("spec", "bits", "accuracy", "final loss", "energy/inference", "train s")]
    rows += [(r["spec"], str(r["bits"]), f"{100 * r['accuracy']:.2f}%", f"{r['losses'][-1]:.4f}",
              f"{r['energy_pj'] / 1e3:,.1f} nJ", f"{r['seconds']:.1f}") for r in results]
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def cmd_accuracy(args) -> tuple[list, str]:
    from .sims import accuracy

    names = accuracy.resolve(args.specs) if args.specs else list(accuracy.PRESETS)
    results = accuracy.run_grid(names, args.out, epochs=args.epochs, seed=args.seed, resume=args.resume,
                                scheduler=args.scheduler, workers=args.workers, mnist=args.mnist,
                                progress=not args.quiet)
    accuracy.write_table(results, args.out)
    accuracy.plot(results, args.out)
    return results, _accuracy_table(results)


def cmd_energy(args) -> str:
    import torch

    from . import cost
    from .sims import accuracy, digits

    names = accuracy.resolve(args.specs) if args.specs else list(accuracy.PRESETS)
    _, _, xte, _ = digits.load()
    specs = {n: accuracy._cost_spec(accuracy.PRESETS[n][1]) for n in names}
    model, example = digits.cnn(0), torch.from_numpy(xte[:1])
    if args.json:
        import json

        return json.dumps({n: cost.profile(model, example, spec).to_dict() for n, spec in specs.items()}, indent=2)
    return cost.compare(model, example, specs)


def cmd_demo(args) -> dict:
    """The main job: swamping (small), the accuracy grid and the energy table, one report folder."""
    from .sims import accuracy, swamping
    from .sims.output import atomic_text

    out = Path(args.out)
    rows = swamping.run(6, 16, swamping.DISTRIBUTIONS, swamping.ACCUMULATORS, (16, 256), seed=args.seed,
                        progress=not args.quiet)
    swamping.write_csv(rows, out / "swamping.csv")
    swamping.write_plot(rows, out / "swamping.png")
    results = accuracy.run_grid(list(accuracy.PRESETS), out, epochs=args.epochs, seed=args.seed, resume=args.resume,
                                scheduler=args.scheduler, workers=args.workers, progress=not args.quiet)
    accuracy.write_table(results, out)
    accuracy.plot(results, out)
    ones = {r["order"]: r["sum"] for r in rows
            if r["distribution"] == "ones" and r["acc"] == "fp16" and r["n"] == 4096}
    report = [
        "# lowprec demo report", "",
        f"Seed {args.seed}; {args.epochs} epochs per cell; digits (scikit-learn's bundled 8x8 images).", "",
        "## Accuracy and energy per spec", "",
        "```", _accuracy_table(results), "```", "",
        "Files: [accuracy.csv](accuracy.csv), [accuracy.json](accuracy.json), cells in [cells/](cells/).", "",
        "![accuracy vs bits](accuracy_vs_bits.png)", "", "![energy vs accuracy](energy_vs_accuracy.png)", "",
        "![loss curves](loss_curves.png)", "",
        "## Swamping", "",
        f"4096 ones summed in fp16: sequentially {ones.get('sequential')}, in chunks of 16 {ones.get('chunk 16')}.",
        "", "[swamping.csv](swamping.csv)", "", "![swamping](swamping.png)", "",
    ]
    atomic_text(out / "report.md", "\n".join(report))
    return {"out": str(out), "cells": results, "swamping_rows": len(rows)}


class DefaultsHelp(argparse.HelpFormatter):
    """Help lines end with the option's default where it has a meaningful one (not None or False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is not None and action.default is not False and action.default != argparse.SUPPRESS \
                and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lowprec", description="lowprec: bit-exact low-precision arithmetic, MAC units and their cost.",
        formatter_class=DefaultsHelp)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    fmt_help = DefaultsHelp
    p = sub.add_parser("formats", help="table of named formats, or one format in detail", formatter_class=fmt_help)
    p.add_argument("name", nargs="?", help="a format name: show its parameters and (<= 8 bits) code table")
    p.add_argument("--sample", action="store_true",
                   help="also quantize an embedded sample (Student t activations) to every format")
    p = sub.add_parser("quantize", help="quantize IN.npy to OUT.npy and print error statistics", formatter_class=fmt_help)
    p.add_argument("input", help="a .npy file holding a float array")
    p.add_argument("output", help="the .npy file to write (complete or absent)")
    p.add_argument("--format", required=True, help="a format name, e.g. fp8_e4m3fn, bf16, q1.7, mxfp8_e4m3")
    p.add_argument("--rounding", default="nearest_even", choices=ROUNDING_MODES, help="rounding mode")
    p.add_argument("--seed", type=int, default=0, help="seed of stochastic rounding")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON (for scripts)")
    sub.add_parser("swamping", help="the swamping study (CSV and PNG); options: lowprec swamping --help",
                   add_help=False)
    sub.add_parser("matrix-units", help="fp8 GEMM error against K in a modelled H100/H200 tensor core, with and "
                                        "without promotion (CSV and PNG); options: lowprec matrix-units --help",
                   add_help=False)
    sub.add_parser("accumulation", help="a ResNet-18 evaluated and fine-tuned with bit-accurate accumulation (fp16, "
                                        "a modelled H100 fp8 unit; CSV and PNG); options: lowprec accumulation --help",
                   add_help=False)
    sub.add_parser("sensitivity", help="the digits CNN's accuracy drop per layer and format (CSV); options: "
                                       "lowprec sensitivity --help", add_help=False)
    sub.add_parser("mixed", help="per-layer formats of the digits CNN under an energy, size or latency budget "
                                 "(CSV, TOML spec, PNG); options: lowprec mixed --help", add_help=False)
    sub.add_parser("recipes", help="FP8/FP4 training recipes and bit-accurate accumulation on a character "
                                   "transformer (CSV and PNG); options: lowprec recipes --help", add_help=False)
    for name, helptext in (("accuracy", "train and evaluate a grid of format specs (digits or MNIST)"),
                           ("demo", "the main job: swamping, accuracy grid and energy table in one report")):
        p = sub.add_parser(name, help=helptext, formatter_class=fmt_help)
        p.add_argument("--out", default="lowprec-demo" if name == "demo" else "lowprec-accuracy",
                       help="output folder (CSV, JSON, PNG; cells/ per spec)")
        p.add_argument("--epochs", type=int, default=15, help="training epochs per cell (>= 1)")
        p.add_argument("--seed", type=int, default=0, help="seed of the data split, initialisation and batches")
        p.add_argument("--resume", action="store_true",
                       help="keep the cells already written with the same settings (others run again)")
        p.add_argument("--scheduler", help="dask.distributed scheduler address, or 'local' for a LocalCluster "
                                           "(default: a local process pool of --workers)")
        p.add_argument("--workers", type=int, default=2, help="local process pool size")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--json", action="store_true", help="print the results as JSON (for scripts)")
        if name == "accuracy":
            p.add_argument("--specs", help="comma-separated preset names (default: all of them): "
                                           + ", ".join(_preset_names()))
            p.add_argument("--mnist", help="a folder with MNIST's four IDX files instead of digits")
    p = sub.add_parser("energy", help="the cost model's energy table for the digits CNN under the presets",
                       formatter_class=fmt_help)
    p.add_argument("--specs", help="comma-separated preset names (default: all of them)")
    p.add_argument("--json", action="store_true", help="print each spec's per-layer costs as JSON (for scripts)")
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "swamping":
        from .sims import swamping

        return swamping.main(argv[1:])
    if argv and argv[0] == "matrix-units":
        from .sims import matrix_units

        return matrix_units.main(argv[1:])
    if argv and argv[0] == "accumulation":
        from .sims import accumulation

        return accumulation.main(argv[1:])
    if argv and argv[0] in ("sensitivity", "mixed"):
        from .sims import mixed

        return (mixed.main_sensitivity if argv[0] == "sensitivity" else mixed.main_mixed)(argv[1:])
    if argv and argv[0] == "recipes":
        from .sims import training_recipes

        return training_recipes.main(argv[1:])
    args = parser.parse_args(argv)
    try:
        if args.command == "formats":
            if args.name:
                f = formats.get(args.name)
                print(repr(f))
                print(f"source: {formats.source(args.name)}" if f.name in formats.names() else "")
                if getattr(f, "bits", 99) <= 8 and hasattr(f, "codes"):
                    print(code_table(args.name))
            else:
                print(demo("nearest_even") if args.sample else f"{format_table()}\n\n{block_table()}")
        elif args.command == "quantize":
            stats = cmd_quantize(args)
            _emit(stats, args.json, "\n".join(f"{k}: {v}" for k, v in stats.items()))
        elif args.command == "accuracy":
            results, table = cmd_accuracy(args)
            _emit(results, args.json, f"{table}\n(written to {args.out})")
        elif args.command == "energy":
            print(cmd_energy(args))
        elif args.command == "demo":
            summary = cmd_demo(args)
            _emit(summary, args.json, f"{_accuracy_table(summary['cells'])}\n\nreport: {Path(args.out) / 'report.md'}")
    except KeyboardInterrupt:
        print("lowprec: interrupted; rerun with --resume to keep the finished cells", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as exc:
        if args.debug:
            raise
        print(f"lowprec: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _preset_names() -> list[str]:
    from .sims.accuracy import PRESETS

    return list(PRESETS)
