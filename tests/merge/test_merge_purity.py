"""pimsync.merge stays pure: no module that does I/O is imported, no file is opened."""

from __future__ import annotations

import ast
from pathlib import Path

import pimsync.merge

PACKAGE = Path(pimsync.merge.__file__).parent
FORBIDDEN = {"os", "io", "socket", "sqlite3", "pathlib", "shutil", "subprocess", "http",
             "urllib", "tempfile", "logging", "asyncio", "pimsync.storage",
             "pimsync.state"}  # fmt: skip


def test_no_io_in_merge_package() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN), (
                    f"{path.name} imports {name}"
                )
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("open", "print", "input"), (
                    f"{path.name}: {node.func.id}"
                )
