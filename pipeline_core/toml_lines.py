"""Line numbers for dotted key paths in a TOML text.

``tomllib`` gives values without positions; error messages want ``file:line``. This scans the text
for table headers and ``key =`` lines, which covers how pipeline files are written (standard tables,
dotted keys, inline tables on one line). A path it cannot place falls back to its nearest parent.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", key)
    return tuple(part.strip("\"'") for part in parts)


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map of every table and key path found in ``text`` to its 1-based line number."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            path = table + _split_key(key.group(1))
            lines.setdefault(path, number)
            # keys of an inline table on the same line: ``optimizer = { name = "sgd", lr = 0.1 }``
            for inner in re.findall(r"[{,]\s*([A-Za-z0-9_-]+)\s*=", line[key.end():]):
                lines.setdefault(path + (inner,), number)
    return lines


def line_of(lines: dict[tuple[str, ...], int], path: tuple[str | int, ...]) -> int | None:
    """The line of ``path`` or of its nearest parent that has one; list indices are skipped."""
    keys = tuple(str(part) for part in path if not isinstance(part, int))
    for end in range(len(keys), 0, -1):
        if keys[:end] in lines:
            return lines[keys[:end]]
    return None
