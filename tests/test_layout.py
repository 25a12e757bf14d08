"""The package's shape: the CLI is a thin layer that nothing else imports."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "miniseries"


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_nothing_outside_cli_imports_cli():
    """`cli/` parses, calls one library function and prints; the library never reaches back into
    it (only `python -m miniseries`, i.e. __main__.py, starts the CLI)."""
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "cli" or rel.name == "__main__.py":
            continue
        bad = {
            m
            for m in _imported_modules(path)
            if m == "miniseries.cli" or m.startswith("miniseries.cli.")
        }
        if bad:
            offenders[str(rel)] = sorted(bad)
    assert offenders == {}


def test_the_check_sees_an_import_of_cli(tmp_path):
    """The scanner itself: both import forms are found, in functions too."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from miniseries.cli import main\nimport miniseries.cli.fit\n")
    found = _imported_modules(src)
    assert "miniseries.cli" in found and "miniseries.cli.fit" in found
