"""The package's layering: arrows point one way, proxy -> tiering, never back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TIERING = Path(__file__).resolve().parent.parent / "tiering"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level and TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(TIERING.glob("*.py")), ids=lambda p: p.name)
def test_no_tiering_module_imports_the_proxy(path: Path) -> None:
    above = {m for m in imported_modules(path) if m == "proxy" or m.startswith("proxy.")}
    assert not above, f"{path.name} imports {sorted(above)}: tiering/ must not know proxy/"


def test_the_layering_test_sees_the_tiering_package() -> None:
    assert len(list(TIERING.glob("*.py"))) > 10
