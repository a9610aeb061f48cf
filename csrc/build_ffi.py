"""cffi build script (API mode) for lowprec's C core; setup.py runs it through ``cffi_modules``.

Set LOWPREC_SANITIZE=1 to build with AddressSanitizer + UndefinedBehaviorSanitizer (debug, -O1);
LOWPREC_NO_OPENMP=1 to build without OpenMP.
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
        return ["-O1", "-g", "-DLP_NO_CLONES", *san, *omp], [*san, *omp]
    return ["-O3", "-fno-math-errno", *omp], omp


ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())
_compile, _link = _flags()
ffibuilder.set_source(
    "lowprec._kernels",
    '#include "lowprec.h"\n',
    # relative to the project root, where setup.py runs this script (setuptools rejects absolute paths)
    sources=[f"csrc/{s}" for s in SOURCES],
    include_dirs=["csrc"],
    extra_compile_args=["-std=c99", *_compile],
    extra_link_args=_link,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
    sys.exit(0)
