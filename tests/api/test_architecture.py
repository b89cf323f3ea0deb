"""The layers hold: the import contracts (docs/architecture.md), no import cycles, the built-ins found
by name, and an installed distribution whose import names belong to this project alone."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

from pipeline_core.discovery import builtins

from helpers import ROOT, install

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_import_contracts_hold():
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "0 broken" in result.stdout


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module) & modules:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_the_import_graph_has_no_cycles():
    """Type-checking imports count: a cycle through them is still a knot in the design."""
    graph = grimp.build_graph("pipeline_core", "pipeline_core_plugins", cache_dir=None)
    assert _cycles(graph, set(graph.modules)) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    package = tmp_path / "knot"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from knot import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from knot import a\n")
    (package / "c.py").write_text("from knot import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("knot", cache_dir=None)
    assert _cycles(graph, set(graph.modules)) == [["knot.a", "knot.b"]]


def test_every_package_folder_is_in_the_distribution():
    setuptools = PYPROJECT["tool"]["setuptools"]
    folders = {"pipeline_core": ROOT / "pipeline_core", **{name: ROOT / path for name, path in setuptools["package-dir"].items()}}
    found = {
        ".".join([package, *init.parent.relative_to(folder).parts])
        for package, folder in folders.items()
        for init in folder.rglob("__init__.py")
    }
    assert sorted(found) == sorted(setuptools["packages"])


def test_builtins_are_known_by_name_and_every_plugin_module_is_one():
    names = [*builtins.DEFAULT_PLUGINS, *builtins.OPTIONAL_PLUGINS]
    for name in names:
        assert importlib.util.find_spec(builtins.module_of(name)) is not None, name
    with_hooks = set()
    for path in (ROOT / "plugins").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        decorators = [d for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) for d in node.decorator_list]
        if any("hookimpl" in ast.unparse(decorator) for decorator in decorators):
            with_hooks.add(".".join(["plugins", *path.relative_to(ROOT / "plugins").with_suffix("").parts]))
    assert with_hooks == set(names)
    assert builtins.canonical("plots.boundary") == builtins.canonical("pipeline_core_plugins.plots.boundary") == "plugins.plots.boundary"
    assert builtins.canonical("my_plugin") == "my_plugin"


def test_an_installed_distribution_holds_only_this_projects_import_names(tmp_path):
    """A non-editable install (what `pip install pipeline-core` does) into an empty folder."""
    target = tmp_path / "site"
    install(ROOT, target)
    names = {path.name for path in target.iterdir() if not path.name.endswith(".dist-info") and path.name != "bin"}
    assert names == {"pipeline_core", "pipeline_core_plugins"}
    assert (target / "pipeline_core_plugins" / "templates" / "report.html.j2").is_file()
    assert (target / "pipeline_core" / "templates" / "plugin" / "__init__.py.j2").is_file()
    probe = "import pipeline_core_plugins.stages, importlib.util; print(importlib.util.find_spec('plugins'))"
    result = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"
