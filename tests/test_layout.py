"""The layout's rules, checked on the source: commands on top of the library, never the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "streamer"
LIBRARY = sorted(p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts[:1])


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_the_library_is_found():
    assert PACKAGE / "streaming" / "pipeline.py" in LIBRARY and not any("cli" in p.parts for p in LIBRARY)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_modules_import_neither_click_nor_the_cli(path):
    offending = {m for m in imported_modules(path) if m == "click" or m.startswith("click.")
                 or m == "streamer.cli" or m.startswith("streamer.cli.")}
    if path.relative_to(PACKAGE).as_posix() == "__main__.py":
        offending.discard("streamer.cli")  # `python -m streamer` is the command line's entry point
    assert not offending, f"{path.name} imports {sorted(offending)}: commands belong in streamer/cli/"
