"""The ``lowprec`` command (also ``python -m lowprec``).

Subcommands so far: ``formats`` (the table of named formats, or one format with its code table),
``demo`` (the format table, then an embedded sample quantized to each format, with error
statistics) and ``swamping`` (the swamping study of lowprec.sims.swamping). The accuracy and energy
studies arrive with the torch layers and the cost model.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from . import formats
from .formats import FixedFormat
from .quantize import quantize
from .rounding import ROUNDING_MODES


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
        "flushed": float(np.mean((q64 == 0) & (x64 != 0))),
        "nonfinite": float(np.mean(~np.isfinite(q64))),
    }


def demo(rounding: str = "nearest_even") -> str:
    x = embedded_sample()
    lines = ["lowprec demo: the named formats", "", format_table(), "",
             f"an embedded sample of {x.size} heavy-tailed activations (Student t, 3 dof), "
             f"rounding={rounding}:", ""]
    header = f"{'format':<14}{'max_abs':>12}{'mean_abs':>12}{'max_rel':>12}{'mean_rel':>12}{'saturated':>11}{'flushed':>9}{'non-finite':>11}"
    lines.append(header)
    for name in formats.names():
        fmt = formats.get(name)
        q = quantize(x, fmt, rounding, seed=0)
        s = error_stats(x, q, fmt)
        lines.append(f"{name:<14}{s['max_abs']:>12.4g}{s['mean_abs']:>12.4g}{s['max_rel']:>12.4g}"
                     f"{s['mean_rel']:>12.4g}{s['saturated']:>11.4f}{s['flushed']:>9.4f}{s['nonfinite']:>11.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lowprec", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_formats = sub.add_parser("formats", help="table of named formats, or one format in detail")
    p_formats.add_argument("name", nargs="?", help="a format name: show its parameters and (<= 8 bits) code table")
    p_demo = sub.add_parser("demo", help="format table and an embedded sample quantized to every format")
    p_demo.add_argument("--rounding", default="nearest_even", choices=ROUNDING_MODES)
    sub.add_parser("swamping", help="the swamping study (CSV and PNG); options: lowprec swamping --help",
                   add_help=False)
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "swamping":
        from .sims import swamping

        return swamping.main(argv[1:])
    args = parser.parse_args(argv)
    try:
        if args.command == "formats":
            if args.name:
                f = formats.get(args.name)
                print(repr(f))
                print(f"source: {formats.source(args.name)}" if f.name in formats.names() else "")
                if f.bits <= 8:
                    print(code_table(args.name))
            else:
                print(format_table())
        elif args.command == "demo":
            print(demo(args.rounding))
    except (ValueError, TypeError) as exc:
        print(f"lowprec: error: {exc}", file=sys.stderr)
        return 2
    return 0
