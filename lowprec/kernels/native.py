"""The compiled C core (built by setup.py through cffi). Importing it never compiles anything."""

try:
    from .._kernels import ffi, lib  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "lowprec's C core (lowprec._kernels) is not built. From the checkout run "
        "`pip install -e .` (or `python setup.py build_ext --inplace`)."
    ) from exc
