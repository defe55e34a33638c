"""The package's layout rules, checked on the source: imports point one way, modules stay short."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nst"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The nst modules `path` imports, at module level or inside functions alike.

    `from a.b import c` depends on the module a.b.c when that is a module, otherwise on a.b.
    Importing a submodule also runs its package's __init__; those implicit edges are not
    counted, so a package __init__ may re-export from its own modules."""
    out: set[str] = set()
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in known else base)
    return {m for m in out if m in known and m != here}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, set(mods)) for name, path in mods.items()}


def test_no_import_cycles_function_level_imports_included() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_sees_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    # the checker itself must fail on what it is meant to catch
    pkg = tmp_path / "nst"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from nst.b import g\n")
    (pkg / "b.py").write_text("def g():\n    from nst import a\n")
    known = {"nst", "nst.a", "nst.b"}
    global PACKAGE
    saved, PACKAGE = PACKAGE, pkg
    try:
        graph = {module_name(p): imports_of(p, known) for p in pkg.glob("*.py")}
    finally:
        PACKAGE = saved
    assert graph["nst.a"] == {"nst.b"} and graph["nst.b"] == {"nst.a"}
    assert find_cycle(graph) in (["nst.a", "nst.b", "nst.a"], ["nst.b", "nst.a", "nst.b"])


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_stays_short(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}): split it"


def test_top_level_keeps_only_shared_modules() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == {
        "__init__",
        "__main__",
        "config",
        "imagefiles",
        "images",
        "losses",
        "memory",
        "optimizers",
        "parts",
        "perceptual",
        "provenance",
        "registry",
        "runtime",
    }


#: the chapters in reading order: each may import only the ones before it (docs/DESIGN.md)
CHAPTERS = (
    "nst",
    "imagefiles",
    "images",
    "losses",
    "provenance",
    "registry",
    "runtime",
    "memory",
    "optimizers",
    "parts",
    "backbones",
    "config",
    "perceptual",
    "metrics",
    "data",
    "optimize",
    "tracking",
    "models",
    "train",
    "methods",
    "study",
    "report",
    "cli",
    "__main__",
)


def chapter(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "nst"


def test_imports_point_down_the_chapters() -> None:
    mods = modules()
    assert {chapter(m) for m in mods} <= set(CHAPTERS), "a new chapter: place it in CHAPTERS"
    upward = sorted(
        f"{m} -> {d}"
        for m, deps in import_graph().items()
        for d in deps
        if CHAPTERS.index(chapter(d)) > CHAPTERS.index(chapter(m))
    )
    assert not upward, "imports against the reading order: " + "; ".join(upward)
