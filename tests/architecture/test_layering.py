"""The shape of the code, checked from its source (no imports run).

- every ``tamis.*`` module maps to one file under sdk/, plugins/ or adapters/;
- the sdk never imports ``tamis.adapters`` or ``tamis.plugins`` (it finds them through the registry);
- there is no import cycle between modules, counting imports inside functions too (a cycle hidden in a
  function is still a cycle; only ``if TYPE_CHECKING:`` imports are left out);
- modules do not import ``__version__`` from the package (``tamis._version`` has it);
- no source file is over 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"tamis": ROOT / "sdk", "tamis.plugins": ROOT / "plugins", "tamis.adapters": ROOT / "adapters"}
MAX_LINES = 400


def module_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if pkg == "tamis" and parts and parts[0] in ("plugins", "adapters"):
                continue  # not under sdk/ in this layout, but be safe
            out[".".join([pkg, *parts])] = path
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def lazy_tables() -> dict[str, dict[str, str]]:
    """{package: {name: defining module}} from each package's lazy re-export table."""
    out: dict[str, dict[str, str]] = {}
    for m, p in module_files().items():
        if p.name != "__init__.py":
            continue
        table: dict[str, str] = {}
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values, strict=True):
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant) and isinstance(v.value, str):
                        if v.value.startswith("."):
                            table[k.value] = m + v.value
                        elif v.value.startswith("tamis."):
                            table[k.value] = v.value
        out[m] = table
    return out


def imports_of(module: str, path: Path, known: set[str], lazy: dict[str, dict[str, str]] | None = None) -> set[str]:
    """The tamis modules that ``module`` imports (at any depth of its code, TYPE_CHECKING blocks aside)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("tamis"):
                        m = resolve(alias.name)
                        if m:
                            found.add(m)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("tamis"):
                    for alias in child.names:
                        # a name re-exported lazily by a package is an import of the module defining it
                        via, seen = target, set()
                        while via in (lazy or {}) and alias.name in lazy[via] and via not in seen:
                            seen.add(via)
                            via = lazy[via][alias.name]  # follow re-exports down to the defining module
                        m = resolve(via if via != target else f"{target}.{alias.name}")
                        if m:
                            found.add(m)
            visit(child)

    visit(tree)
    found.discard(module)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    lazy = lazy_tables()
    return {m: imports_of(m, p, known, lazy) for m, p in files.items()}


def _sdk(module: str) -> bool:
    return not module.startswith(("tamis.adapters", "tamis.plugins"))


def test_every_module_has_one_file():
    files = module_files()
    assert "tamis" in files and "tamis.collection" in files and "tamis.adapters.qdrant_edge" in files
    assert len(set(files.values())) == len(files)


def test_the_sdk_never_imports_an_adapter_or_plugin(graph):
    bad = sorted(
        f"{m} imports {t}" for m, targets in graph.items() if _sdk(m) for t in targets if not _sdk(t)
    )
    assert not bad, "the sdk finds adapters and plugins through tamis.registry:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles(graph):
    cycles = _cycles(graph)
    assert not cycles, "import cycles (break them by moving the shared part down a layer):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_version_import_from_the_package():
    bad = []
    for m, p in module_files().items():
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "tamis" and node.level == 0:
                if any(a.name == "__version__" for a in node.names):
                    bad.append(m)
    assert not bad, f"import __version__ from tamis._version: {bad}"


def test_no_file_over_the_size_limit():
    big = {str(p.relative_to(ROOT)): n for p in module_files().values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"files over {MAX_LINES} lines (split them by concern): {big}"


def test_the_test_catches_a_forbidden_import(tmp_path):
    """The checks are real: a forbidden import and a cycle in a made-up tree are found."""
    known = {"tamis", "tamis.a", "tamis.b", "tamis.adapters", "tamis.adapters.x"}
    a = tmp_path / "a.py"
    a.write_text("from tamis.b import f\ndef g():\n    from tamis.adapters.x import X\n")
    b = tmp_path / "b.py"
    b.write_text("import tamis.a\nif TYPE_CHECKING:\n    from tamis.adapters.x import Y\n")
    g = {"tamis.a": imports_of("tamis.a", a, known), "tamis.b": imports_of("tamis.b", b, known)}
    assert g == {"tamis.a": {"tamis.b", "tamis.adapters.x"}, "tamis.b": {"tamis.a"}}
    assert _cycles(g) == [["tamis.a", "tamis.b"]]


#: the sdk's packages by layer: a package imports only from lower layers (adapters and plugins sit on top)
LAYERS: list[set[str]] = [
    {"tamis"},
    {"tamis.data", "tamis.encoders", "tamis.stores", "tamis.serving"},
    {"tamis.calibration"},
    {"tamis.collection"},
    {"tamis.evaluation"},
    {"tamis.training"},
    {"tamis.distributed"},
    {"tamis.cli", "tamis.testing"},
]


def package_of(module: str) -> str:
    """The sdk package a module belongs to: ``tamis.collection._ingest`` -> ``tamis.collection``;
    ``tamis._errors``, ``tamis.registry`` and ``tamis`` itself -> ``tamis`` (the base layer)."""
    parts = module.split(".")
    if len(parts) >= 2 and not parts[1].startswith("_") and parts[1] != "registry":
        return ".".join(parts[:2])
    return "tamis"


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    rank = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
    bad = []
    for m, targets in sorted(graph.items()):
        if not _sdk(m) or m == "tamis":  # the top package only re-exports, lazily
            continue
        src = package_of(m)
        for t in sorted(targets):
            dst = package_of(t)
            if _sdk(t) and dst != src and rank.get(dst, 99) >= rank.get(src, -1):
                bad.append(f"{m} ({src}, layer {rank.get(src)}) imports {t} ({dst}, layer {rank.get(dst)})")
    return bad


def test_every_sdk_package_has_a_layer():
    pkgs = {package_of(m) for m in module_files() if _sdk(m)}
    assert pkgs == set().union(*LAYERS), "add the new package to LAYERS (and to docs/ARCHITECTURE.md)"


def test_packages_import_only_lower_layers(graph):
    bad = layer_violations(graph)
    assert not bad, "an sdk package imports only from lower layers (docs/ARCHITECTURE.md):\n" + "\n".join(bad)


def test_the_layer_check_catches_an_upward_import():
    g = {"tamis.data._x": {"tamis.collection._y"}, "tamis.collection._y": {"tamis.data._x"}}
    assert layer_violations(g) == [
        "tamis.data._x (tamis.data, layer 1) imports tamis.collection._y (tamis.collection, layer 3)"
    ]
