"""The one-file ``predict.py`` that every bundle ships: :func:`script` concatenates the modules that
open, check and run a bundle, in dependency order, without their imports of each other.

Why a build step: the deploy side is split by responsibility so that each part can be read alone,
but a bundle's ``predict.py`` must run as one file with Python, NumPy and onnxruntime alone
(``python -P bundle/predict.py bundle --input rows.csv``, where neither this package nor the
bundle's folder is on the import path), and the bundle's manifest vouches for that one file.

What keeps the build honest (each is checked here, and :func:`script` raises when one fails): the
modules of :data:`MODULES` import each other only as ``from pipeline_core_deploy.MODULE import
NAME`` at their top level, from a module listed before them, without renaming, so dropping those
imports leaves every name bound; no two of them bind the same top-level name; everything else
they import at their top level (the standard library and NumPy) is gathered once at the top.
Imports inside functions (onnxruntime, cryptography, Pillow, onnx) stay where they are, so they
are still made only when needed. ``python -m pipeline_core_deploy.standalone`` prints the script.
"""

from __future__ import annotations

import ast
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from pipeline_core_deploy import __version__

PACKAGE = "pipeline_core_deploy"
#: the modules of the script, each after every module it imports; the last one's docstring opens the script
MODULES = ("common", "table_columns", "manifest", "signature", "consistency", "bundle", "opening", "row_checks", "images", "csv_input",
           "readers", "records", "writers", "predict")


class BuildError(Exception):
    """A module of :data:`MODULES` that cannot go into one file as it is (a bug in the package, not in a bundle)."""


@dataclass
class _Parts:
    """What the build gathers from the modules: the imports to hoist and the names bound so far."""

    plain: set[tuple[str, str | None]] = field(default_factory=set)  # import MODULE [as NAME]
    names: dict[str, set[tuple[str, str | None]]] = field(default_factory=dict)  # from MODULE import NAME [as ALIAS]
    bound: dict[str, str] = field(default_factory=dict)  # top-level name → the module that binds it
    hoisted: set[str] = field(default_factory=set)  # names bound by the gathered imports


def _source(module: str) -> str:
    return (Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8")


def _bound_names(node: ast.stmt) -> list[str]:
    """The top-level names a statement that is not an import binds."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
    return [name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)]


def _check_own_import(module: str, node: ast.ImportFrom, earlier: tuple[str, ...]) -> None:
    source = (node.module or "").removeprefix(f"{PACKAGE}.")
    if node.level or source not in earlier or any(alias.asname not in (None, alias.name) for alias in node.names):
        raise BuildError(f"{module}.py: `{ast.unparse(node)}`: the one-file predict.py takes only `from {PACKAGE}.MODULE import NAME` "
                         f"of a module listed before it in MODULES ({', '.join(earlier)}), without renaming")


def _gather_import(module: str, node: ast.Import | ast.ImportFrom, parts: _Parts) -> None:
    """Keep a top-level import of the standard library or NumPy for the top of the script."""
    for alias in node.names:
        if isinstance(node, ast.Import):
            parts.plain.add((alias.name, alias.asname))
            parts.hoisted.add(alias.asname or alias.name.split(".")[0])
        else:
            parts.names.setdefault(str(node.module), set()).add((alias.name, alias.asname))
            parts.hoisted.add(alias.asname or alias.name)


def _body(module: str, parts: _Parts) -> tuple[str, str]:
    """A module's first docstring paragraph and its text without docstring and top-level imports;
    its imports and names go into ``parts``."""
    text = _source(module)
    tree = ast.parse(text, f"{module}.py")
    earlier = MODULES[: MODULES.index(module)]
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node not in tree.body:
            named = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
            if any(name.split(".")[0] == PACKAGE for name in named) or getattr(node, "level", 0):
                raise BuildError(f"{module}.py, line {node.lineno}: `{ast.unparse(node)}` inside a block; import it at the top level")
    drop: set[int] = set()
    for index, node in enumerate(tree.body):
        docstring = index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            if [alias.name for alias in node.names] != ["annotations"]:
                raise BuildError(f"{module}.py: `{ast.unparse(node)}`: the script has `from __future__ import annotations` only")
        elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == PACKAGE):
            _check_own_import(module, node, earlier)
        elif isinstance(node, ast.Import) and any(alias.name.split(".")[0] == PACKAGE for alias in node.names):
            raise BuildError(f"{module}.py: `{ast.unparse(node)}`: use `from {PACKAGE}.MODULE import NAME`")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            _gather_import(module, node, parts)
        elif not docstring:
            for name in _bound_names(node):
                if name in parts.bound and parts.bound[name] != module:
                    raise BuildError(f"{module}.py binds {name!r}, which {parts.bound[name]}.py binds too: rename one (the script is one namespace)")
                parts.bound[name] = module
            continue
        drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines = [line for number, line in enumerate(text.splitlines(), start=1) if number not in drop]
    body = "\n".join(lines).strip("\n")
    while "\n\n\n\n" in body:
        body = body.replace("\n\n\n\n", "\n\n\n")
    return (ast.get_docstring(tree) or "").split("\n\n")[0], body


def _imports(parts: _Parts) -> str:
    """The gathered imports as isort writes them: the standard library, then the others (NumPy)."""
    def order(name: str) -> tuple[int, str]:  # constants, then classes, then the rest, as isort orders names
        return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)

    def statement_of(module: str) -> str:
        names = sorted(parts.names[module], key=lambda alias: order(alias[0]))
        return f"from {module} import {', '.join(name if asname is None else f'{name} as {asname}' for name, asname in names)}"

    sections: list[list[str]] = [[], []]
    for module, asname in sorted(parts.plain):
        sections[module.split(".")[0] not in sys.stdlib_module_names].append(f"import {module}" + (f" as {asname}" if asname else ""))
    for module in sorted(parts.names):
        sections[module.split(".")[0] not in sys.stdlib_module_names].append(statement_of(module))
    return "\n\n".join("\n".join(section) for section in sections if section)


def script() -> str:
    """The text of a bundle's ``predict.py``: every module of :data:`MODULES` in one file that needs
    only Python, NumPy and onnxruntime, and runs as ``python predict.py BUNDLE --input FILE`` (the
    last module, :mod:`pipeline_core_deploy.predict`, ends with the command line). Raises
    :class:`BuildError` when a module cannot go into one file as it is."""
    parts = _Parts()
    sections = []
    for module in MODULES:
        summary, body = _body(module, parts)
        if module != MODULES[-1]:
            about = textwrap.wrap(f"{module}.py: {' '.join(summary.split())}", 98)
            sections.append("\n".join(["# " + "-" * 93, *(f"# {line}" for line in about)]) + "\n\n\n" + body)
        else:
            sections.append(f"# {'-' * 93}\n# {module}.py: the command line\n\n\n{body}")
    clashes = sorted(parts.hoisted & set(parts.bound))
    if clashes:
        raise BuildError(f"{', '.join(f'{name!r} ({parts.bound[name]}.py)' for name in clashes)} also named by an import: rename it")
    last = _source(MODULES[-1])
    docstring = ast.get_source_segment(last, ast.parse(last).body[0]) or '""""""'
    built = "\n".join(f"# {line}" for line in textwrap.wrap(
        f"Built by {PACKAGE}.standalone.script() ({PACKAGE} {__version__}) from its modules {', '.join(MODULES)}: "
        "change those, not this file.", 98))
    return "\n".join([docstring, "", built, "", "from __future__ import annotations", "", _imports(parts), "",
                      "\n\n\n".join(sections), ""])


if __name__ == "__main__":
    sys.stdout.write(script())
