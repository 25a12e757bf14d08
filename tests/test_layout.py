"""The package's shape: layers that import only downwards, and a thin CLI that nothing imports."""

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
    assert _import_cycles(graph) == []


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


# The layers, lowest first, and what each may import (every import, lazy ones too: a wrong-way
# import inside a function is still the layer reaching up). The base modules are the top-level
# ones: config, accounting, plan, errors, paths, progress, fetch, formatting.
LAYERS = {
    "base": {"base"},
    "laws": {"base", "laws"},
    "data": {"base", "data"},
    "store": {"base", "laws", "store"},
    "train": {"base", "data", "train"},
    "evaluate": {"base", "data", "train", "evaluate"},
    "study": {"base", "laws", "data", "store", "train", "evaluate", "study"},
    "report": {"base", "laws", "store", "evaluate", "study", "report"},
    "jobs": {"base", "laws", "data", "store", "train", "evaluate", "study", "report", "jobs"},
}


def _layer(module: str, package: Path) -> str | None:
    """'base' for a top-level module, the subpackage's name otherwise; None for the package
    itself and its entry point."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return None
    return parts[1] if (package / parts[1]).is_dir() else "base"


def _layer_violations(package: Path) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        layer = _layer(module, package)
        if layer in (None, "cli"):
            continue
        if layer not in LAYERS:
            out.append(f"{module}: subpackage {layer!r} has no rule in LAYERS")
            continue
        names = _imported_modules(path)
        for name in sorted(names):
            if not name.startswith("miniseries.") or name.rsplit(".", 1)[0] in names - {
                "miniseries"
            }:
                continue  # `from miniseries.x import y` is reported once, as miniseries.x
            target = _layer(name, package)
            if target is not None and target not in LAYERS[layer]:
                out.append(f"{module} ({layer}) imports {name} ({target})")
    return out


def test_every_layer_imports_only_the_layers_below_it():
    """The tree is the architecture: base < laws, data < store, train < evaluate < study < report
    < jobs < cli (README, "Layout")."""
    assert _layer_violations(PACKAGE) == []


def test_the_layer_check_sees_a_wrong_way_import(tmp_path):
    """The checker itself, on a planted package: laws reaching into train (lazily, inside a
    function) and a base module importing study are both caught; a downward import is not."""
    pkg = tmp_path / "miniseries"
    for sub in ("laws", "train", "study"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "laws" / "fit.py").write_text("def f():\n    from miniseries.train.model import GPT\n")
    (pkg / "plan.py").write_text("import miniseries.study.sweep\n")
    (pkg / "study" / "sweep.py").write_text(
        "from miniseries.laws import fit\nimport miniseries.plan\n"
    )
    (pkg / "train" / "model.py").write_text("from miniseries import errors\n")
    found = _layer_violations(pkg)
    assert found == [
        "miniseries.laws.fit (laws) imports miniseries.train.model (train)",
        "miniseries.plan (base) imports miniseries.study.sweep (study)",
    ]


def test_a_preset_name_is_resolved_only_at_the_entry_points():
    """The CLI resolves `--preset` once and passes the `Preset` down; below it, only a record that
    stores its preset by name (RunSpec, TrainConfig: their `preset_config`) looks a name up."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "cli" or rel.name == "config.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        allowed = {
            id(n)
            for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef) and f.name == "preset_config"
            for n in ast.walk(f)
        }
        offenders += [
            f"{rel}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Name)
            and node.id in ("get_preset", "PRESETS")
            and isinstance(node.ctx, ast.Load)
            and id(node) not in allowed
        ]
    assert offenders == ["study/results.py:79"]  # store rows name their preset: a record read


def _import_cycles(graph: dict[str, set[str]]) -> list[str]:
    cycles, done = [], set()

    def visit(m, stack):
        for n in sorted(graph[m]):
            if n in stack:
                cycles.append(" -> ".join(stack[stack.index(n) :] + [n]))
            elif n not in done:
                visit(n, stack + [n])
        done.add(m)

    for m in sorted(graph):
        if m not in done:
            visit(m, [m])
    return cycles


def test_cli_modules_import_each_other_one_way():
    """Subcommands share flags and printing through `cli/common` and `cli/dry_run`; no two CLI
    modules import each other, lazily or not (`dry_run` used to import `sweep` back)."""
    cli = {_module_name(p): p for p in (PACKAGE / "cli").glob("*.py")}
    graph = {m: {n for n in _imported_modules(p) if n in cli} - {m} for m, p in cli.items()}
    assert _import_cycles(graph) == []
    assert _import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a -> b -> c -> a"]
