"""The longest function signatures of a package, by parameter count (self/cls not counted), so a
review can see where a settings object would pay off.

Usage: python scripts/signature_lengths.py [folder=streaming_core] [how many=10]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def signatures(root: Path) -> list[tuple[int, str]]:
    """(parameter count, "path:line name") of every function and method under ``root``."""
    rows = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                count = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
                params = a.posonlyargs + a.args
                if params and params[0].arg in ("self", "cls"):
                    count -= 1
                rows.append((count, f"{path}:{node.lineno} {node.name}"))
    return sorted(rows, key=lambda row: -row[0])


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path("streaming_core")
    for count, where in signatures(root)[:int(argv[1]) if len(argv) > 1 else 10]:
        print(count, where)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
