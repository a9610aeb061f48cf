"""Time the swamping study with the README's defaults (lowprec swamping: N = 2**6 ... 2**22, U(0,1),
N(0,1) and ones, fp32/fp16/bf16/dlfloat16 accumulators, sequential, chunks of 16 ... 1024, pairwise),
and the same at full length in fp8 accumulators. Prints seconds per configuration and per cell.

Run: python bench/swamping.py [--quick]
"""

from __future__ import annotations

import argparse
import time

from lowprec.sims import swamping


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="N up to 2**16 only")
    hi = 16 if ap.parse_args().quick else 22
    for label, accs in (("README defaults", swamping.ACCUMULATORS), ("fp8 accumulators", ("fp8_e5m2", "fp8_e4m3fn"))):
        t = time.perf_counter()
        rows = swamping.run(6, hi, accumulators=accs, progress=False)
        s = time.perf_counter() - t
        print(f"{label:18} N = 2**6 .. 2**{hi}: {len(rows)} sums in {s:.1f} s ({1e3 * s / len(rows):.1f} ms a sum)")


if __name__ == "__main__":
    main()
