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


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules this file imports when it is imported (module level only: an import
    inside a function is a deliberate lazy one and cannot form a cycle at import time)."""
    out = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:  # `from miniseries import report_tables` names a module
                name = f"{node.module}.{a.name}"
                out.add(name if name in modules else node.module)
    return out & modules


def test_modules_import_no_private_names_of_other_modules():
    """Across modules only public names: a `_name` is the module's own business."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("miniseries"):
                offenders += [
                    f"{path.relative_to(PACKAGE)}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                ]
    assert offenders == []


def test_module_level_imports_form_no_cycle():
    """A module that imports a module that imports it back is two concerns in one room (a format
    that also dispatches to its sources, laws that import their own extension)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: _top_level_imports(p, set(paths)) - {m} for m, p in paths.items()}
    cycles = []

    def visit(m, stack):
        for n in graph[m]:
            if n in stack:
                cycles.append(" -> ".join(stack[stack.index(n) :] + [n]))
            elif n not in done:
                visit(n, stack + [n])
        done.add(m)

    done: set[str] = set()
    for m in sorted(graph):
        if m not in done:
            visit(m, [m])
    assert cycles == []


def test_the_cycle_check_sees_a_cycle(tmp_path):
    """The scanner itself on two modules that import each other at module level."""
    pkg = tmp_path / "miniseries"
    pkg.mkdir()
    (pkg / "a.py").write_text("from miniseries.b import x\n")
    (pkg / "b.py").write_text("import miniseries.a\n\ndef f():\n    from miniseries import c\n")
    (pkg / "c.py").write_text("")
    modules = {"miniseries.a", "miniseries.b", "miniseries.c"}
    assert _top_level_imports(pkg / "a.py", modules) == {"miniseries.b"}
    assert _top_level_imports(pkg / "b.py", modules) == {"miniseries.a"}


def test_the_cli_starts_without_numpy():
    """Building every subcommand's parser (`miniseries --help`, and every command's start) loads
    no numpy, torch or matplotlib: those load inside the command that needs them."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom miniseries.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\n"
        "loaded = [m for m in ('numpy', 'torch', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(loaded), file=sys.stderr)\nsys.exit(1 if loaded else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, f"loaded at start: {res.stderr.strip()}"
