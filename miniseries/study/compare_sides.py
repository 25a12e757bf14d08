"""The two sides of a comparison, read: a runs CSV, a project, or a study in a project (the rule
``read_line`` states), and what differs between two lines' runs — the settings in their stored
specs, and whether an arm that changed the optimizer had its learning rates tuned (an LR sweep
stored for it). ``compare_inputs`` reads both sides and compares them (miniseries/laws/compare.py).
"""

import json
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path

from miniseries.config import CONVENTIONS, check_convention
from miniseries.errors import UserError
from miniseries.laws.base import Run, runs_from_csv
from miniseries.laws.compare import Comparison, compare_lines
from miniseries.paths import store_path
from miniseries.store.db import open_store
from miniseries.study.runspec import RunSpec
from miniseries.study.stored_fits import runs_for_fit

# Run settings that vary inside one line by design (depth, steps, budget, seed) or only name or
# locate it (study, kind, data paths, the params-convention label): never "what differs".
IGNORED_SETTINGS = frozenset(
    {"depth", "steps", "budget", "seed", "study", "kind", "data", "tokenizer", "convention"}
)
IGNORED_OVERRIDES = frozenset({"threads"})  # speed, not the result
LR_FIT_KIND = "lr_transfer"  # the store's kind for an LR sweep's verdict (`miniseries lr-sweep`)
SPEC_DEFAULTS = {f.name: f.default for f in fields(RunSpec) if f.default not in (MISSING, None)}


@dataclass
class Line:
    """One side as named on the command line, read: runs per convention, the settings its runs
    were trained with, and the (preset, optimizer) settings its store holds an LR sweep for."""

    name: str
    source: str  # in words: "runs CSV x.csv", "project p", "study s in p"
    runs: dict[str, list[Run]]  # convention -> runs (a CSV: only the one given)
    specs: list[dict] | None = None  # config_json["spec"] of each run; None for a CSV
    tuned: frozenset | None = None  # {(preset or None, optimizer)}; None for a CSV
    project: str | None = None


def read_line(arg: str, project: str | None = None, convention: str = "total") -> Line:
    """The dispatch rule: a path ending in .csv is a runs CSV (`miniseries fit`'s format, params
    counted by ``convention``); a folder holding miniseries.db is a project (all its finished
    isoFLOP runs); anything else is a study in ``project`` (its finished isoFLOP runs)."""
    check_convention(convention)
    if arg.lower().endswith(".csv"):
        return Line(Path(arg).stem, f"runs CSV {arg}", {convention: runs_from_csv(arg, convention)})
    if store_path(arg).is_file():
        with open_store(arg, create=False) as store:
            rows = store.list_runs(kind="isoflop", status="done")
            if not rows:
                raise UserError(
                    f"no finished isoFLOP runs in {store.path}; run `miniseries sweep --project "
                    f"{arg}` first, or name a study with --project"
                )
            return _store_line(Path(arg).resolve().name, f"project {arg}", rows, store, arg)
    if project is None:
        raise UserError(
            f"{arg!r} is not a .csv file, nor a project folder (no {store_path(arg)}); to compare "
            "a study, name its project with --project P"
        )
    with open_store(project, create=False) as store:
        rows = store.list_runs(kind="isoflop", study=arg, status="done")
        if not rows:
            studies = {r["study"] for r in store.list_runs(kind="isoflop", status="done")}
            known = ", ".join(sorted(repr(s) for s in studies if s)) or "none"
            raise UserError(
                f"no finished isoFLOP runs of study {arg!r} in {store.path} (studies there: "
                f"{known}); check the name, or give a .csv file or a project folder"
            )
        return _store_line(arg, f"study {arg!r} in {project}", rows, store, project)


def _store_line(name, source, rows, store, project) -> Line:
    runs = {c: r for c in CONVENTIONS if (r := runs_for_fit(rows, c))}
    specs = [_spec(r) for r in rows if r.get("config_json")]
    return Line(name, source, runs, specs or None, lr_tuned(store), str(project))


def lr_tuned(store) -> frozenset:
    """{(preset, optimizer)} the store holds an LR-transfer fit for (`miniseries lr-sweep`). A
    fit's optimizer is the one its record names, else its sweep's runs' (study lr-sweep:GROUP),
    else RunSpec's default (what `lr-sweep` trains); preset None means any preset."""
    columns, rows = store.rows("fits")
    out = set()
    for row in rows:
        fit = dict(zip(columns, row))
        if fit["kind"] != LR_FIT_KIND:
            continue
        rec = json.loads(fit["json"])
        opts = {rec["optimizer"]} if rec.get("optimizer") else set()
        if not opts:
            sweep = store.list_runs(kind="lr_sweep", study=f"lr-sweep:{rec.get('group', 'all')}")
            opts = {_spec(r).get("optimizer") for r in sweep} - {None}
        for opt in opts or {SPEC_DEFAULTS["optimizer"]}:
            out.add((rec.get("preset"), opt))
    return frozenset(out)


def _spec(row: dict) -> dict:
    """A store row's RunSpec fields ({} when it has none, or they are not readable)."""
    try:
        spec = json.loads(row.get("config_json") or "{}").get("spec")
    except (ValueError, AttributeError):
        return {}
    return spec if isinstance(spec, dict) else {}


def _settings(spec: dict) -> dict:
    """A run's settings as flat strings, RunSpec's defaults filled in, ignored ones left out."""
    flat = {k: v for k, v in (SPEC_DEFAULTS | spec).items() if k not in IGNORED_SETTINGS}
    for k, v in (flat.pop("overrides", None) or {}).items():
        if k not in IGNORED_OVERRIDES:
            flat[f"overrides.{k}"] = v
    return {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in flat.items()}


def settings_diff(specs_a: list[dict], specs_b: list[dict]) -> list[str]:
    """What differs between two lines' run settings, one 'key: A's -> B's' each (e.g.
    'optimizer: muon -> adamw'); a line whose runs disagree shows its values as {x, y}."""
    flat_a, flat_b = [_settings(s) for s in specs_a], [_settings(s) for s in specs_b]
    keys = list(dict.fromkeys(k for s in flat_a + flat_b for k in s))
    out = []
    for key in keys:
        va = sorted({s.get(key, "—") for s in flat_a})
        vb = sorted({s.get(key, "—") for s in flat_b})
        if va != vb:
            show = [v[0] if len(v) == 1 else "{" + ", ".join(v) + "}" for v in (va, vb)]
            out.append(f"{key}: {show[0]} -> {show[1]}")
    return out


def untuned_notes(a: Line, b: Line) -> list[str]:
    """When the lines trained with different optimizers: each arm whose (preset, optimizer) has
    no LR sweep in its store. An ablation with an untuned arm measures its LRs, not its setting."""
    if a.specs is None or b.specs is None:
        return []
    used = [
        {(s.get("preset", SPEC_DEFAULTS["preset"]), s.get("optimizer", SPEC_DEFAULTS["optimizer"]))
         for s in line.specs or []}
        for line in (a, b)
    ]  # fmt: skip
    if {o for _, o in used[0]} == {o for _, o in used[1]}:
        return []
    notes = []
    for line, settings in zip((a, b), used):
        if line.tuned is None:
            continue
        for preset, opt in sorted(settings, key=str):
            if (preset, opt) not in line.tuned and (None, opt) not in line.tuned:
                notes.append(
                    f"arm {line.name}: LRs not tuned for this setting (run `miniseries lr-sweep "
                    f"--project {line.project} --preset {preset} --optimizer {opt}`: the store "
                    f"has no LR-transfer fit for {opt}); its losses may reflect its LRs, not its "
                    "setting"
                )
    return notes


def compare_inputs(
    a: str,
    b: str,
    project: str | None = None,
    convention: str = "total",
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Comparison:
    """`miniseries compare A B`: read both lines (``read_line``'s rule), compare them under
    ``convention``, add D*/N* under every other convention both store lines have, what differs
    between their runs' settings, and a note on each arm whose LRs were never tuned."""
    la, lb = read_line(a, project, convention), read_line(b, project, convention)
    if la.name == lb.name:  # two files or folders of one name: the arguments as given
        la.name, lb.name = a, (b if a != b else f"{b} (again)")
    for line in (la, lb):
        if convention not in line.runs:
            have = ", ".join(line.runs) or "none"
            raise UserError(
                f"{line.source}: no runs with params counted as {convention!r} (params_"
                f"{convention}); conventions there: {have}; pass --convention"
            )
    others = {c: (la.runs[c], lb.runs[c]) for c in CONVENTIONS if c in la.runs and c in lb.runs}
    c = compare_lines(
        la.runs[convention], lb.runs[convention], convention, n_bootstrap, seed,
        (la.name, lb.name), others,
    )  # fmt: skip
    settings = None
    if la.specs is not None and lb.specs is not None:
        settings = tuple(settings_diff(la.specs, lb.specs))
    notes = (*untuned_notes(la, lb), *c.notes)
    return replace(c, sources=(la.source, lb.source), settings=settings, notes=notes)


def studies_to_compare(rows: list[dict], project, convention: str) -> tuple[str | None, list[str]]:
    """(baseline, the studies to compare with it) among a project's finished isoFLOP runs: the
    baseline is the study named "baseline", else the first one trained; compared are the studies
    whose stored settings differ from its (a study with no line under ``convention``, or runs
    without stored specs, is left out)."""
    order = [r["study"] for r in sorted(rows, key=lambda r: r["created_at"])]
    studies = list(dict.fromkeys(x for x in order if x))
    base = "baseline" if "baseline" in studies else (studies[0] if studies else None)
    specs = {}
    for x in studies:
        try:
            line = read_line(x, project, convention)
        except UserError:
            continue
        if line.specs:
            specs[x] = line.specs
    if base not in specs:
        return base, []
    return base, [x for x in specs if x != base and settings_diff(specs[base], specs[x])]
