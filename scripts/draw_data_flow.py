"""Draw docs/data-flow.png: how data moves through miniseries, stage by stage, with the module
that owns each stage. Run: .venv/bin/python scripts/draw_data_flow.py [--out docs/data-flow.png]
"""

import argparse
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# (what flows, the modules that own the stage, what it writes) in pipeline order
STAGES = [
    ("corpus", "data/build\ndata/offline\ndata/download\ndata/local", "parquet shards"),
    ("tokens", "data/tokenizer\ndata/shards", "token arrays (.npy)"),
    ("loader", "data/loader", "BOS-aligned rows"),
    ("trainer", "train/model\ntrain/optim\ntrain/trainer\ntrain/bpb", "one run, 1 or N ranks"),
    ("run folder", "train/run_folder", "config, log.jsonl,\ncheckpoint, summary"),
    ("store", "store/db (SQLite)", "runs, curves, CORE,\nfits, predictions"),
    (
        "laws",
        "laws/isoflop\nlaws/parametric\nlaws/outcome\nstudy/stored_fits",
        "Interval, Prediction",
    ),
    (
        "report",
        "report/project_report\nreport/plots\nreport/calibrate\nreport/extrapolate",
        "report.md / .html",
    ),
]
# the side branches: who drives the runs, and who reads the run folder besides the store
DRIVERS = (
    "study/ (runspec, sweep, launch): many runs in parallel (fork, torchrun, Slurm), resumable"
)
EVAL = "evaluate/ (core): CORE of each finished run"
# the layers, lowest first: each imports only those before it (tests/test_layout.py)
LAYERS = (
    "layers: base (config, accounting, plan, ...) < laws/, data/ < store/, train/ < evaluate/ "
    "< study/ < report/ < jobs/ (demo, ablate, lr_sweep) < cli/"
)


def draw(out: Path) -> Path:
    fig = Figure(figsize=(14, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 14)
    ax.set_ylim(0, 4.8)
    ax.axis("off")
    w, h, gap, y = 1.5, 1.35, 0.2, 2.0
    centres = []
    for i, (name, modules, writes) in enumerate(STAGES):
        x = 0.3 + i * (w + gap)
        box = FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.03", fc="#eef3fb", ec="#2f5fb3")
        ax.add_patch(box)
        ax.text(x + w / 2, y + h - 0.18, name, ha="center", va="center", weight="bold", size=11)
        ax.text(
            x + w / 2, y + 0.38, modules, ha="center", va="center", size=7.2, family="monospace"
        )
        ax.text(x + w / 2, y - 0.28, writes, ha="center", va="top", size=7.5, color="#5b6676")
        centres.append(x + w / 2)
        if i:
            ax.add_patch(
                FancyArrowPatch(
                    (x - gap + 0.02, y + h / 2),
                    (x - 0.02, y + h / 2),
                    arrowstyle="-|>",
                    mutation_scale=12,
                    color="#1d2430",
                )  # fmt: skip
            )
    trainer, folder, store = centres[3], centres[4], centres[5]
    ax.text(trainer, 4.25, DRIVERS, ha="center", size=8.5, style="italic")
    ax.add_patch(
        FancyArrowPatch((trainer, 4.15), (trainer, y + h + 0.05), arrowstyle="-|>",
                        mutation_scale=12, color="#5b6676", linestyle="--")
    )  # fmt: skip
    ax.text((folder + store) / 2, 0.35, EVAL, ha="center", size=8.5, style="italic")
    for x0, x1 in ((folder, (folder + store) / 2 - 0.1), ((folder + store) / 2 + 0.1, store)):
        ax.add_patch(
            FancyArrowPatch((x0, y - 0.95) if x0 == folder else (x0, 0.6), (x1, 0.6)
                            if x0 == folder else (x1, y - 0.95), arrowstyle="-|>",
                            mutation_scale=10, color="#5b6676", linestyle="--")
        )  # fmt: skip
    ax.text(0.3, 4.5, "miniseries: data flow", size=14, weight="bold")
    ax.text(0.3, 0.05, LAYERS, size=8, family="monospace", color="#1d2430")
    fig.savefig(out, format="png")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs/data-flow.png")
    print(draw(p.parse_args().out))


if __name__ == "__main__":
    main()
