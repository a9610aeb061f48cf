"""Kernels specialised to a user's function by numba, cached on disk.

A kernel is a template: plain Python source whose functions call the user's functions as globals
(``_mul``, ``_step``, ...). ``specialise`` writes it once to a file named by a fingerprint of the
template and of the user's functions (their code, defaults, closure cells and the globals they read,
recursively), so numba's own cache (``cache=True``, object code beside that file) serves it to
later processes; a changed function gets a new file, never a stale kernel. Functions whose
fingerprint cannot be taken (a global of an unknown kind) compile per process, uncached.

The cache lives in ``$LOWPREC_CACHE_DIR`` (default ``$XDG_CACHE_HOME/lowprec`` or ``~/.cache/lowprec``),
under ``numba/``; where it is not writable, kernels compile per process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import sys
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np

_MODULES: dict = {}


def numba_module():
    try:
        import numba
    except ImportError:
        raise ModuleNotFoundError("user functions compile with numba: pip install numba") from None
    return numba


def cache_dir() -> Path:
    """Where specialised kernels and their object code are kept."""
    root = os.environ.get("LOWPREC_CACHE_DIR")
    if root:
        return Path(root) / "numba"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lowprec" / "numba"


def _value_print(value: Any, seen: set) -> str | None:
    """A stable print of what a function reads (None: a kind we cannot vouch for)."""
    if isinstance(value, (bool, int, float, complex, str, bytes, type(None))):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, types.ModuleType):
        return f"module:{value.__name__}"
    if isinstance(value, np.ndarray):
        return f"array:{value.dtype}:{value.shape}:{hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}"
    if isinstance(value, np.generic):
        return f"{value.dtype}:{value!r}"
    if isinstance(value, type) and value.__module__ in ("numpy", "builtins"):
        return f"type:{value.__module__}.{value.__qualname__}"
    if callable(value):
        return fingerprint(value, seen)
    return None


def _code_names(code: types.CodeType) -> set:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def fingerprint(fn: Callable, seen: set | None = None) -> str | None:
    """A digest of a function and of everything it reads (None where that cannot be vouched for)."""
    seen = set() if seen is None else seen
    f = getattr(fn, "py_func", fn)  # a numba dispatcher: its Python function
    if not isinstance(f, types.FunctionType):
        module = getattr(fn, "__module__", None) or ""
        if module.startswith(("numpy", "math", "numba", "cmath", "builtins")):  # library functions
            return f"lib:{module}.{getattr(fn, '__qualname__', getattr(fn, '__name__', ''))}"
        return None
    if id(f) in seen:
        return f"recursive:{f.__qualname__}"
    seen.add(id(f))
    parts = [f.__module__ or "", f.__qualname__, hashlib.sha256(marshal.dumps(f.__code__)).hexdigest(),
             repr(f.__defaults__)]
    for name in sorted(_code_names(f.__code__)):
        if name in f.__globals__:
            printed = _value_print(f.__globals__[name], seen)
            if printed is None:
                return None
            parts.append(f"{name}={printed}")
    for cell in f.__closure__ or ():
        try:
            printed = _value_print(cell.cell_contents, seen)
        except ValueError:  # an empty cell
            printed = "empty"
        if printed is None:
            return None
        parts.append(printed)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _compiled(fn: Callable, numba) -> Callable:
    return fn if hasattr(fn, "py_func") else numba.njit(fn)


def specialise(template: str, functions: dict[str, Callable], jit: dict[str, dict]) -> types.ModuleType:
    """The template's module with `functions` as its globals and the functions named in `jit`
    compiled with those numba options (``cache=True`` where the fingerprint allows). Memoised per
    process."""
    numba = numba_module()
    key = (template, tuple(functions.items()), repr(sorted(jit.items())))
    if key in _MODULES:
        return _MODULES[key]
    prints = [fingerprint(f) for f in functions.values()]
    digest = None
    if all(p is not None for p in prints):
        digest = hashlib.sha256("\n".join([template, repr(sorted(jit.items())), numba.__version__, *functions,
                                           *prints]).encode()).hexdigest()[:24]
    module = _load(template, digest)
    for name, fn in functions.items():
        setattr(module, name, _compiled(fn, numba))
    module.prange = numba.prange
    for name, options in jit.items():
        setattr(module, name, numba.njit(cache=digest is not None and module.__file__ is not None, **options)
                (getattr(module, name)))
    _MODULES[key] = module
    return module


def _load(template: str, digest: str | None) -> types.ModuleType:
    """The template as an importable module (numba's cache rebuilds a kernel's environment by the
    module's name): a file in the cache directory when it can be written, else source in memory."""
    name = f"lowprec_jit_{digest}" if digest else f"lowprec_jit_anon_{len(_MODULES)}"
    path = None
    if digest:
        try:
            folder = cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{name}.py"
            if not path.is_file() or path.read_text() != template:
                tmp = folder / f".{name}.{os.getpid()}.tmp"
                tmp.write_text(template)
                os.replace(tmp, path)  # whole or absent, for concurrent processes
        except OSError:
            path = None
    if path is not None:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    module = types.ModuleType(name)
    module.__file__ = None
    sys.modules[name] = module
    exec(compile(template, f"<{name}>", "exec"), module.__dict__)  # noqa: S102 (our own template)
    return module


def python_module(template: str, functions: dict[str, Callable]) -> types.SimpleNamespace:
    """The template run as plain Python with the user's Python functions (the slow fallback)."""
    namespace: dict = {"prange": range}
    namespace.update({name: getattr(f, "py_func", f) for name, f in functions.items()})
    exec(compile(template, "<lowprec python fallback>", "exec"), namespace)  # noqa: S102
    return types.SimpleNamespace(**namespace)
