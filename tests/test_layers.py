"""The one-way layering of DESIGN.md section 1, read from the source: every import of every module,
at the top and inside functions. Layers become subpackages a slice at a time (issue 14); each that
exists is held here."""

import ast
from pathlib import Path

import lowprec

ROOT = Path(lowprec.__file__).parent


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every lowprec import in a module, top level or nested."""
    module = ".".join(("lowprec",) + path.relative_to(ROOT).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            names = [name] + [f"{name}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for n in names:
            if n.startswith("lowprec"):
                out.append((n, node.lineno))
    return out


def test_the_formats_layer_imports_nothing_above_it():
    allowed = ("lowprec.formats", "lowprec._checks")
    # the one exception: FloatFormat.encode / FixedFormat.encode round, so they call lowprec.encode
    exceptions = {("scalar.py", "lowprec.array"), ("scalar.py", "lowprec.array.encode")}
    for path in (ROOT / "formats").glob("*.py"):
        for name, line in _imports(path):
            if name.startswith(allowed) or (path.name, name) in exceptions:
                continue
            raise AssertionError(f"lowprec/formats/{path.name}:{line} imports {name}, above the formats layer")


def test_the_shared_helpers_import_nothing_of_lowprec():
    for name in ("_checks.py", "_exact.py", "formats/bits.py"):
        assert not [n for n, _ in _imports(ROOT / name)], name


def test_the_kernels_layer_imports_only_formats_and_the_compiled_core():
    allowed = ("lowprec.kernels", "lowprec._kernels", "lowprec.formats", "lowprec._exact", "lowprec._checks")
    for path in (ROOT / "kernels").glob("*.py"):
        for name, line in _imports(path):
            assert name.startswith(allowed), f"lowprec/kernels/{path.name}:{line} imports {name}, above the kernels layer"


def test_the_array_layer_imports_nothing_above_it():
    allowed = ("lowprec.array", "lowprec.kernels", "lowprec.formats", "lowprec._exact", "lowprec._checks")
    for path in (ROOT / "array").glob("*.py"):
        for name, line in _imports(path):
            assert name.startswith(allowed), f"lowprec/array/{path.name}:{line} imports {name}, above the array layer"


def test_no_import_circle_among_the_layers():
    """Between the layer subpackages, imports go one way (formats <- kernels <- array <- mac <- cost <- nn)."""
    order = ["formats", "kernels", "array", "mac", "cost", "nn"]
    for i, lower in enumerate(order):
        for higher in order[i + 1:]:
            for path in (ROOT / lower).glob("*.py"):
                hits = [(n, line) for n, line in _imports(path) if n.startswith(f"lowprec.{higher}")]
                hits = [h for h in hits if (lower, path.name, h[0]) not in {("formats", "scalar.py", "lowprec.array"),
                                                                             ("formats", "scalar.py", "lowprec.array.encode")}]
                assert not hits, f"lowprec/{lower}/{path.name} imports {hits} of the higher {higher} layer"


def test_the_mac_layer_imports_nothing_above_it():
    allowed = ("lowprec.mac", "lowprec.array", "lowprec.kernels", "lowprec.formats", "lowprec._exact", "lowprec._checks")
    for path in (ROOT / "mac").glob("*.py"):
        for name, line in _imports(path):
            assert name.startswith(allowed), f"lowprec/mac/{path.name}:{line} imports {name}, above the MAC layer"


def test_no_layer_imports_the_studies_or_the_command():
    for path in ROOT.rglob("*.py"):
        if path.parent.name in ("formats", "kernels", "array", "mac", "cost", "nn"):
            studies = [n for n, _ in _imports(path) if n.startswith(("lowprec.sims", "lowprec.cli"))]
            assert not studies, f"{path.relative_to(ROOT)} imports {studies}"
