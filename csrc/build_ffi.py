"""cffi build script (API mode) for lowprec's C core; setup.py runs it through ``cffi_modules``.

Environment switches:
- LOWPREC_SANITIZE=1: AddressSanitizer + UndefinedBehaviorSanitizer (debug, -O1). Run Python with
  LD_PRELOAD="$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 to load it.
- LOWPREC_PORTABLE=1: plain -O2, no per-CPU clones (what any C99 compiler on any machine gets).
- LOWPREC_NO_OPENMP=1: no OpenMP (single-threaded kernels).
- LOWPREC_ISA=x86-64-v4 | x86-64-v3 | generic: one instruction-set path alone, no runtime dispatch
  (AVX-512, AVX2, plain C): .ci/isa-paths builds each and checks they give the dispatching build's bits.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCES = ["quantize.c"]


def _cdef_text() -> str:
    """lowprec.h without comments: cffi's parser wants plain declarations."""
    text = (HERE / "lowprec.h").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return text


def _openmp_flags() -> list[str]:
    """-fopenmp if this compiler accepts it (gcc, most clang builds with libomp), else nothing."""
    if os.environ.get("LOWPREC_NO_OPENMP"):
        return []
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "t.c"
        src.write_text("#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n")
        try:
            ok = subprocess.run([cc, "-fopenmp", str(src), "-o", str(Path(tmp) / "t")], capture_output=True).returncode == 0
        except OSError:
            ok = False
    return ["-fopenmp"] if ok else []


def _flags() -> tuple[list[str], list[str]]:
    omp = _openmp_flags()
    if os.environ.get("LOWPREC_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
        return ["-O1", "-g", "-ffp-contract=off", "-DLP_NO_CLONES", *san, *omp], [*san, *omp]
    isa = os.environ.get("LOWPREC_ISA")
    if isa:
        only = {"x86-64-v4": ["-march=x86-64-v4", "-DLP_MAX_ISA=4"], "x86-64-v3": ["-march=x86-64-v3", "-DLP_MAX_ISA=3"],
                "generic": ["-DLP_NO_DISPATCH", "-DLP_MAX_ISA=0"]}
        if isa not in only:
            raise SystemExit(f"LOWPREC_ISA must be one of {', '.join(only)}; got {isa!r}")
        return ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-DLP_NO_CLONES", *only[isa], *omp], omp
    if os.environ.get("LOWPREC_PORTABLE"):
        return ["-O2", "-ffp-contract=off", "-DLP_NO_CLONES", "-DLP_NO_DISPATCH", *omp], omp
    # -fno-trapping-math: no kernel reads the floating-point exception flags, and without it GCC keeps
    # a branch for every comparison-driven select (it will not speculate a possibly trapping operation),
    # which stops vectorization; values are unaffected (no reassociation, no contraction)
    return ["-O3", "-ffp-contract=off", "-fno-trapping-math", *omp], omp


ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())
_compile, _link = _flags()
ffibuilder.set_source(
    "lowprec._kernels",
    '#include "lowprec.h"\n',
    # relative to the project root, where setup.py runs this script (setuptools rejects absolute paths)
    sources=[f"csrc/{s}" for s in SOURCES],
    # the headers quantize.c includes: an edited one rebuilds the module (else build_ext --inplace in
    # a used tree keeps the old one, its timestamps being the .c file's)
    depends=sorted(f"csrc/{p.name}" for p in HERE.glob("*.h")),
    include_dirs=["csrc"],
    extra_compile_args=["-std=c99", *_compile],
    extra_link_args=_link,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
    sys.exit(0)
