"""The report: built from a store filled with runs drawn from a known law, and from an empty one."""

import argparse
import base64
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import synthetic_runs

from miniseries.config import get_preset
from miniseries.evaluate.bundle import CORE_TASKS
from miniseries.laws import fit_laws
from miniseries.report.project_report import build_report, write_report
from miniseries.store.db import open_store
from miniseries.study.results import held_out_prediction
from miniseries.study.stored_fits import FIT_KIND, fit_record, plan_one_knob

# A law with bpb-like values (~1.5-2.5 at these sizes).
LAW = {"E": 1.0, "A": 40.0, "B": 40.0, "alpha": 0.34, "beta": 0.28}
BUDGETS = (1e13, 3e13, 1e14, 3e14)
HELD_OUT = 3e14
MISSING = ("winograd", "agi_eval_lsat_ar")
SHARES = {"total": 1.0, "kaplan": 0.85, "matrices": 0.7}  # params under each convention
ROOT = Path(__file__).resolve().parents[1]
KNOB_FLOPS, KNOB_MEASURED = 1e14, 1.55
SECTIONS = ("headline", "runs", "laws", "held-out", "crossing", "curves", "lr", "core")
SECTIONS += ("extrapolation", "predictions", "comparison", "notes")  # in the page's order


def _isoflop_rows(store, runs):
    for i, r in enumerate(runs):
        rid = f"iso{i:03d}"
        params = {f"params_{c}": int(r.params * s) for c, s in SHARES.items()}
        store.ensure_run(
            rid,
            kind="isoflop",
            study="sweep",
            budget=r.budget,
            depth=i % 7 + 1,
            preset="cpu",
            tokens=int(r.tokens),
            flops=r.flops,
            steps=int(r.tokens / 1024),
            **params,
        )
        store.update_run(rid, status="done", val_bpb=r.loss, wall_s=12.0)
        fracs = np.linspace(0.1, 1.0, 10)
        curve = [
            {
                "step": k,
                "flops": f * r.flops,
                "tokens": int(f * r.tokens),
                "val_bpb": r.loss * f**-0.08,
            }
            for k, f in enumerate(fracs)
        ]
        store.add_curve(rid, curve)


def _series_rows(store):
    """Depths 2-6: final bpb ∝ F^-0.06, curves ∝ f^-0.04 (nested), CORE-20 rising with depth."""
    rng = np.random.default_rng(1)
    for depth in range(2, 7):
        rid, flops = f"ser{depth}", 1e13 * 2.0**depth
        final = 2.2 * (flops / 1e13) ** -0.06
        tasks = []
        for t in CORE_TASKS:
            if t.label in MISSING:
                continue
            acc = t.random_baseline + (1 - t.random_baseline) * 0.015 * depth
            acc = float(np.clip(acc + 0.003 * rng.standard_normal(), 0, 1))
            centered = (acc - t.random_baseline) / (1 - t.random_baseline)
            tasks.append(
                {"task": t.label, "accuracy": acc, "centered": centered, "n_examples": 500}
            )
        core = float(np.mean([t["centered"] for t in tasks]))
        store.ensure_run(
            rid,
            kind="series",
            study="series",
            depth=depth,
            preset="cpu",
            flops=flops,
            tokens=int(flops / 6e5),
            params_total=100_000,
            params_kaplan=85_000,
            params_matrices=70_000,
        )
        store.update_run(rid, status="done", val_bpb=final, core=core, core_label="CORE-20")
        fracs = np.linspace(0.05, 1.0, 12)
        curve = [
            {"step": k, "flops": f * flops, "val_bpb": final * f**-0.04}
            for k, f in enumerate(fracs)
        ]
        store.add_curve(rid, curve)
        store.add_core_tasks(rid, tasks)


def _lr_rows(store):
    """Per depth a parabola in log2 LR: deeper is better, optima within ±0.15 log2 of x1."""
    for depth, x_opt in ((2, 0.1), (4, -0.15), (6, 0.05)):
        for x in np.arange(-2, 2.5, 0.5):
            rid = f"lr{depth}_{x:+.1f}"
            loss = (2.3 - 0.1 * depth) * (1 + 0.02 * (x - x_opt) ** 2)
            store.ensure_run(rid, kind="lr_sweep", study="lr", depth=depth, lr_mult=float(2**x))
            store.update_run(rid, status="done", val_bpb=loss)


def make_project(path: Path, n_bootstrap: int = 200) -> Path:
    """A store with every kind of data the report reads, drawn from LAW."""
    runs = synthetic_runs(BUDGETS, per_budget=7, span=0.6, noise=0.002, law=LAW, seed=3)
    with open_store(path) as store:
        _isoflop_rows(store, runs)
        _series_rows(store)
        _lr_rows(store)
        below = [r for r in store.list_runs(kind="isoflop") if r["budget"] < HELD_OUT]
        pred = held_out_prediction(below, HELD_OUT, "total", n_bootstrap)
        store.add_prediction(f"budget:{HELD_OUT:g}", pred.to_dict())
        # a one-knob run, its prediction made by the code `miniseries run` uses, from a stored fit
        laws = fit_laws(runs, "total", n_bootstrap=50, seed=0)
        store.add_fit(FIT_KIND, "total", fit_record(laws, runs, 50, 0))
        _, pred, _ = plan_one_knob(KNOB_FLOPS, get_preset("cpu"), store.latest_fit(FIT_KIND))
        store.ensure_run("knob1", kind="one_knob", study="knob:seq_len", depth=pred.plan["depth"])
        store.update_run("knob1", status="done", val_bpb=KNOB_MEASURED, budget=KNOB_FLOPS)
        store.add_prediction("knob1", pred.to_dict())
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = make_project(tmp_path_factory.mktemp("proj"))
    report = write_report(path, n_bootstrap=200)
    return path, report


def test_report_files_are_written_and_html_is_self_contained(project):
    path, report = project
    html = report.html_path.read_text()
    pngs = sorted((path / "report").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"isoflop.png", "optima.png", "isoflop_curves.png", "series.png"} <= names
    assert {"series_curves.png", "lr_sweep.png"} <= names
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == len(pngs)  # every figure is in the page, and nothing else
    assert {base64.b64decode(e) for e in embedded} == {p.read_bytes() for p in pngs}
    md = report.md_path.read_text()
    for p in pngs:
        assert f"(report/{p.name})" in md


def test_every_section_is_present(project):
    _, report = project
    html, md = report.html_path.read_text(), report.md_path.read_text()
    for sid in SECTIONS[:8]:
        assert f'id="{sid}"' in html and f'<a id="{sid}"></a>' in md
    for sid in SECTIONS[8:]:
        assert f'id="{sid}"' in html
    assert "not run yet" not in md  # every kind of run is in this store


def planted_optimum(flops: float) -> tuple[float, float]:
    """(N*, D*) of LAW at a budget, in closed form (Hoffmann et al. 2022, eq. 4, C = 6 N D):
    N* = G (C/6)^a with G = (alpha A / (beta B))^(1 / (alpha + beta)), a = beta / (alpha + beta)."""
    al, be = LAW["alpha"], LAW["beta"]
    g = (al * LAW["A"] / (be * LAW["B"])) ** (1 / (al + be))
    n = g * (flops / 6) ** (be / (al + be))
    return n, flops / (6 * n)


LAWS_ROW = (
    r"^\| {conv}(?: \(chosen\))? \| ([\d.]+) \[[^]]+\] \| ([\d.]+) \[[^]]+\] "
    r"\| ([\d.]+) \[[^]]+\] \| \d+ budgets; C = ([\d.e+]+) \|$"
)


def test_fitted_numbers_appear_under_each_convention(project):
    """The laws table, read back from report.md, against the planted law's closed form, and
    against the exact relation between conventions: params scaled by a constant share keep the
    exponents and divide the ratio by the share."""
    _, report = project
    md = report.md_path.read_text()
    rows = {}
    for conv in SHARES:
        found = re.search(LAWS_ROW.format(conv=conv), md, re.M)
        assert found, f"no laws row for {conv}"
        rows[conv] = [float(x) for x in found.groups()]
    true_a = LAW["beta"] / (LAW["alpha"] + LAW["beta"])
    a, _, ratio, at = rows["total"]
    for conv, (a_c, b_c, ratio_c, _) in rows.items():
        assert a_c == a and a_c + b_c == pytest.approx(1, abs=1.5e-3)  # C = 6 N D
        assert ratio_c == pytest.approx(ratio / SHARES[conv], rel=0.01)  # 3 digits printed
    assert abs(a - true_a) < 0.05  # the bound test_laws measured for a similar design
    n_true, d_true = planted_optimum(at)
    assert ratio == pytest.approx(d_true / n_true, rel=0.10)
    html = report.html_path.read_text()  # in the HTML the interval is a muted span under it
    assert f'{a:.3f} <span class="iv">[' in html
    assert report.headline[0].startswith(f"**a = {a:.3f}")


def test_headline_has_verdicts_and_held_out_check(project):
    _, report = project
    text = "\n".join(report.headline)
    assert "curves nested" in text  # the synthetic study does not cross
    assert "LR transfers" in text
    assert "held-out C = 3e+14" in text and "measured" in text
    err = float(re.search(r"\(([-+][\d.]+)%, (inside|outside)", text).group(1))
    assert abs(err) < 2.0  # drawn from the law the fit recovers


def test_core_is_labelled_core20_with_missing_tasks_named(project):
    _, report = project
    md = report.md_path.read_text()
    assert "CORE-20" in md
    assert "**CORE-20**, not CORE" in md
    for task in MISSING:
        assert task in md
    assert "**CORE** (mean centered)" not in md


def test_extrapolation_and_gpt3_calibration_tables(project):
    _, report = project
    md = report.md_path.read_text()
    assert "GPT-3 175B" in md and "R²" in md and "LOO RMSE" in md
    assert "Cost to reach each target's CORE" in md  # CORE rises: not at chance


def test_one_knob_prediction_renders_with_its_interval(project):
    """The stored prediction is what `miniseries run` writes; the row is recomputed by hand."""
    path, report = project
    md = report.md_path.read_text()
    with open_store(path) as store:
        [pred] = [p["predicted"] for p in store.predictions() if p["run_id"] == "knob1"]
    loss, lo, hi = (pred["outcome"][k] for k in ("point", "lo", "hi"))
    assert lo < loss < hi
    err = 100 * (loss - KNOB_MEASURED) / KNOB_MEASURED
    inside = "inside" if lo <= KNOB_MEASURED <= hi else "outside"
    row = (
        f"| knob:seq_len d{pred['plan']['depth']} | val bpb | {loss:#.4g} [{lo:#.4g}–{hi:#.4g}] "
        f"(90% PI) | {KNOB_MEASURED:#.4g} | {err:+.2f} | {inside} | not started |"
    )
    assert row in md
    knob_rows = [line for line in md.splitlines() if line.startswith("| knob:seq_len")]
    assert len(knob_rows) == 1  # settings (depth, steps, FLOPs) are not compared with themselves


def test_a_crossing_series_fails_and_lists_violations(tmp_path):
    with open_store(tmp_path) as store:
        for depth, flops, bpb in ((2, 1e13, 2.0), (3, 2e13, 1.9), (4, 4e13, 1.95)):
            store.ensure_run(f"s{depth}", kind="series", depth=depth, flops=flops)
            store.update_run(f"s{depth}", status="done", val_bpb=bpb)
    report = write_report(tmp_path, n_bootstrap=20)
    md = report.md_path.read_text()
    assert "> **FAIL**: CROSSING" in md
    assert "| final-loss | d3 | d4 |" in md  # d4 had more compute and ended worse
    assert any(line.startswith("CROSSING") for line in report.headline)


def test_empty_project_says_what_to_run(tmp_path):
    md_path, html_path = build_report(tmp_path, n_bootstrap=10)
    md = md_path.read_text()
    assert "not run yet: `miniseries sweep" in md
    assert "not run yet: `miniseries lr-sweep" in md
    assert "GPT-3 175B" in md  # reference calibration needs no runs
    assert not list(tmp_path.glob("report/*.png"))  # no figures without data
    assert not (tmp_path / "miniseries.db").exists()  # reading never creates a store
    assert "<html" in html_path.read_text()


def test_held_out_prediction_uses_only_smaller_budgets():
    runs = synthetic_runs(BUDGETS, per_budget=7, noise=0.002, law=LAW, seed=5)
    p = held_out_prediction(runs, 3e14, "total", n_bootstrap=100)
    assert p.fit_budgets == (1e13, 3e13, 1e14)
    assert p.loss.lo <= p.loss.point <= p.loss.hi
    n_true, d_true = planted_optimum(3e14)  # the law's own optimum there, in closed form
    loss_true = LAW["E"] + LAW["A"] / n_true ** LAW["alpha"] + LAW["B"] / d_true ** LAW["beta"]
    assert abs(p.loss.point / loss_true - 1) < 0.02
    assert abs(math.log(p.n_opt.point / n_true)) < math.log(1.5)


def test_cli_run_prints_paths_and_headline(project, capsys):
    from miniseries.cli import report as cli

    path, _ = project
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["report", "--project", str(path), "--bootstrap", "50"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert f"wrote {path / 'report.html'}" in out and "a = " in out and "**" not in out


def test_unknown_convention_is_a_user_error(tmp_path):
    from miniseries.errors import UserError

    with pytest.raises(UserError, match="convention"):
        build_report(tmp_path, convention="embeddings")


def _chromium_or_skip() -> None:
    """CI installs Chromium (.ci/run), so there a missing browser is a failure, not a skip."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if os.environ.get("CI"):
        pytest.fail("chromium missing in CI: .ci/run installs it (apt-get install chromium)")
    pytest.skip("chromium not installed (apt-get install chromium; CI installs it)")


def browser_check(project: Path) -> dict:
    """What headless Chromium saw of PROJECT/report.html (scripts/screenshot_report.py --check):
    images decoded, broken ones, the sections laid out. Skips where Chromium is missing."""
    _chromium_or_skip()
    script = ROOT / "scripts" / "screenshot_report.py"
    res = subprocess.run(
        [sys.executable, str(script), str(project), "--check"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


def test_report_renders_in_a_real_browser(project):
    """Headless Chromium loads report.html: every figure decodes, every section has a box."""
    path, _ = project
    seen = browser_check(path)
    assert seen["images"] == len(list((path / "report").glob("*.png"))) >= 6
    assert seen["broken"] == []
    assert seen["sections"] == list(SECTIONS)


def test_screenshot_script_renders_the_report(project, tmp_path):
    _chromium_or_skip()
    path, _ = project
    out = tmp_path / "shot.png"
    script = ROOT / "scripts" / "screenshot_report.py"
    subprocess.run([sys.executable, str(script), str(path), str(out)], check=True, timeout=120)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000


def test_held_out_line_says_when_the_measured_vertex_is_flagged():
    """A held-out profile whose minimum sits at its edge: the verdict stands, and the headline
    and the table say the measurement is an extrapolated vertex."""
    from miniseries.laws.base import PREDICTION, Interval, Prediction
    from miniseries.report.tables import held_out_row

    outcome = Interval(2.32, 2.29, 2.36, kind=PREDICTION)
    p = Prediction(budget=2e12, n_opt=Interval(2.6e5, 2.4e5, 2.8e5), d_opt=None,
                   loss=Interval(2.32, 2.31, 2.33), method="isoflop", convention="total",
                   fit_budgets=(2e11, 1.1e12), outcome=outcome)  # fmt: skip
    clean = {"loss": 2.325, "n_opt": 3.9e5, "flags": []}
    row, line = held_out_row(p, clean)
    assert "inside" in line and "flagged" not in line and row[4] == "2.3250"
    edge = clean | {"flags": ["lowest loss at the largest size (minimum at the edge): widen it"]}
    row, line = held_out_row(p, edge)
    assert "inside" in line and "measured vertex is flagged (lowest loss at the largest" in line
    assert row[4].endswith("(flagged)")
