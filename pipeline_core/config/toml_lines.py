"""Line numbers for dotted key paths in a TOML text.

``tomllib`` gives values without positions; error messages want ``file:line``. This scans the text
for table headers and ``key =`` lines, which covers how pipeline files are written (standard tables,
dotted keys, inline tables on one line, arrays of tables, and arrays of inline tables written one
element per line, whose elements are placed by index). A path it cannot place falls back to its
nearest parent.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_STRINGS = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'""")
_COMMENT = re.compile(r"#.*$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", key)
    return tuple(part.strip("\"'") for part in parts)


Path = tuple[str | int, ...]


def _depth(text: str) -> int:
    """How many more ``[`` than ``]`` a line opens, strings and comments left out."""
    code = _COMMENT.sub("", _STRINGS.sub('""', text))
    return code.count("[") - code.count("]")


def _elements(line: str, depth: int) -> tuple[list[int], int]:
    """Where values of the array start on ``line`` (at the array's own level, ``depth`` 1) and the
    depth after it; strings and comments are blanked first, keeping positions."""
    code = _STRINGS.sub(lambda match: '"' + " " * (len(match.group()) - 2) + '"', line)
    code = code.split("#", 1)[0]
    starts, expecting = [], True
    for position, char in enumerate(code):
        if depth == 1 and expecting and not char.isspace() and char not in ",]":
            starts.append(position)
            expecting = False
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 1:
            expecting = True
    return starts, depth


def _inline_keys(lines: dict[Path, int], path: Path, text: str, number: int) -> None:
    """Keys of an inline table on one line: ``optimizer = { name = "sgd", lr = 0.1 }``."""
    for inner in re.findall(r"[{,]\s*([A-Za-z0-9_-]+)\s*=", text):
        lines.setdefault(path + (inner,), number)


def key_lines(text: str) -> dict[Path, int]:
    """Map of every table and key path found in ``text`` to its 1-based line number (an element of
    an array of tables, or of an array of inline tables written one per line, by its index)."""
    lines: dict[Path, int] = {}
    table: Path = ()
    arrays: dict[Path, int] = {}  # [[x]] headers seen so far
    array: Path | None = None  # inside a multi-line array value: its path
    element, depth = 0, 0
    for number, line in enumerate(text.splitlines(), start=1):
        if array is not None:
            starts, depth = _elements(line, depth)
            for start in starts:
                lines.setdefault(array + (element,), number)
                _inline_keys(lines, array + (element,), line[start:], number)
                element += 1
            array = array if depth > 0 else None
            continue
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(table, number)
            if line.lstrip().startswith("[["):
                index = arrays.get(table, 0)
                arrays[table] = index + 1
                table = table + (index,)
                lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            path = table + _split_key(key.group(1))
            lines.setdefault(path, number)
            _inline_keys(lines, path, line[key.end():], number)
            opened = _depth(line[key.end():])
            if opened > 0:
                array, element, depth = path, 0, opened
    return lines


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path`` or of its nearest parent that has one; where no line has the indices of
    the path, they are skipped."""
    for candidate in (tuple(path), tuple(part for part in path if not isinstance(part, int))):
        for end in range(len(candidate), 0, -1):
            if candidate[:end] in lines:
                return lines[candidate[:end]]
    return None
