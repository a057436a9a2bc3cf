"""No block of six or more identical lines of code appears twice in ``otel_gemini/``.

Lines are compared inside function bodies (signatures, imports, docstrings, comments and
blank lines are passed over), white space folded. A sync function and its async twin may
share their lines: Python cannot write one body for both (the SDK's own stream wrappers
are twins too), so a pair whose two places differ only by ``async``/``await`` is allowed.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "otel_gemini"
MIN_LINES = 6


def _body_lines(path: Path) -> list[tuple[int, str, str]]:
    """(line number, folded text, enclosing function kind) of each code line in a body."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    kept: dict[int, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        kind = "async" if isinstance(node, ast.AsyncFunctionDef) else "sync"
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        for statement in body:
            end = statement.end_lineno or statement.lineno
            for number in range(statement.lineno, end + 1):
                text = " ".join(lines[number - 1].split())
                if text and not text.startswith("#"):
                    kept.setdefault(number, (text, kind))
    return [(number, text, kind) for number, (text, kind) in sorted(kept.items())]


def test_no_block_of_six_identical_lines_repeats() -> None:
    places: dict[tuple[str, ...], list[tuple[str, int, str]]] = defaultdict(list)
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        lines = _body_lines(path)
        name = str(path.relative_to(PACKAGE_DIR))
        for start in range(len(lines) - MIN_LINES + 1):
            window = lines[start : start + MIN_LINES]
            if window[-1][0] - window[0][0] > 2 * MIN_LINES:
                continue  # not one block: lines of separate bodies
            key = tuple(text for _, text, _ in window)
            if sum(len(text) > 12 for text in key) < MIN_LINES // 2:
                continue  # mostly punctuation: ``)``, ``raise``, ``else:``
            places[key].append((name, window[0][0], window[0][2]))
    repeated = []
    for where in places.values():
        if len(where) < 2:
            continue
        kinds = {kind for _, _, kind in where}
        if len(where) == 2 and kinds == {"sync", "async"}:
            continue  # a sync function and its async twin
        repeated.append(" ~ ".join(f"{name}:{line}" for name, line, _ in where))
    assert sorted(repeated) == []
