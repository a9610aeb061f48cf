"""The one-way layering of DESIGN.md section 1, read from the source: every import of every module,
at the top and inside functions. Layers become subpackages a slice at a time (issue 14); each that
exists is held here."""

import ast
from pathlib import Path

import lowprec

ROOT = Path(lowprec.__file__).parent


def _import_nodes(path: Path):
    """(source module, imported names, line) of every import in a module, top level or nested, with
    relative imports made absolute (`import a.b`: source a.b, no names)."""
    # the package relative imports start from: a module's parent; an __init__.py's own package
    package = ".".join(("lowprec",) + path.relative_to(ROOT).parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            yield source, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every lowprec import in a module, top level or nested."""
    out = []
    for source, names, line in _import_nodes(path):
        for n in [source] + [f"{source}.{a}" for a in names]:
            if n.startswith("lowprec"):
                out.append((n, line))
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


def _module_graph() -> dict[str, set[str]]:
    """module -> the lowprec modules it imports (top level or nested). `from package import name`
    points at the submodule where name is one, else at the package."""
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        mods[".".join(("lowprec",) + (parts[:-1] if parts[-1] == "__init__" else parts))] = path
    graph = {name: set() for name in mods}
    graph["lowprec._kernels"] = set()  # the compiled C core: a leaf
    mods["lowprec._kernels"] = None
    for name, path in list(mods.items()):
        if path is None:
            continue
        for source, names, _ in _import_nodes(path):
            subs = [f"{source}.{a}" for a in names if f"{source}.{a}" in mods]
            targets = subs if names and len(subs) == len(names) else subs + [source]
            for target in targets:
                while target and target not in mods:  # a name inside a module: the module
                    target = target.rsplit(".", 1)[0] if "." in target else ""
                if target.startswith("lowprec") and target != name:
                    graph[name].add(target)
    return graph


def test_no_import_circle_anywhere():
    # the one allowed upward call: FloatFormat.encode / FixedFormat.encode round through lowprec.array
    graph = _module_graph()
    graph["lowprec.formats.scalar"].discard("lowprec.array")
    seen, done = set(), set()

    def visit(v, trail):
        if v in done:
            return
        assert v not in seen, "import circle: " + " -> ".join(trail[trail.index(v):] + [v])
        seen.add(v)
        for w in sorted(graph[v]):
            visit(w, trail + [v])
        done.add(v)

    for v in sorted(graph):
        visit(v, [])
