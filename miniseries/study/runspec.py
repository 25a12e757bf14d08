"""What to run: a `RunSpec` is one training run, identified by everything that determines its
result; `isoflop_specs` and `series_specs` turn budgets or a ratio into specs (whole optimizer
steps). The sweep executor (miniseries/study/sweep.py) trains them.
"""

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from miniseries.config import CPU, OPTION_FIELDS, PRESET_FIELDS, RECIPE_FIELDS, Preset, get_preset
from miniseries.errors import UserError
from miniseries.plan import Plan, plan_for_depth, plan_for_steps, plan_isoflop
from miniseries.store.db import run_id

OVERRIDABLE = PRESET_FIELDS + RECIPE_FIELDS + OPTION_FIELDS + ("ref_tokens", "ref_batch")
NOT_IDENTITY = ("threads",)  # overrides that change speed, not the result
# Run-time estimate for longest-first scheduling: steps x (STEP_S + FLOPs per step / PEAK_FLOPS).
# STEP_S is the fixed cost of a tiny step (Python, optimizer, logging), PEAK_FLOPS a CPU's fp32
# rate in practice; only the order of runs depends on them, so rough values do.
STEP_S = 5e-3
PEAK_FLOPS = 30e9


@dataclass
class RunSpec:
    """One training run. ``steps`` is the horizon (sweeps resolve budgets and ratios to steps)."""

    depth: int
    steps: int
    data: str
    tokenizer: str
    preset: str = "cpu"
    overrides: dict = field(default_factory=dict)  # Preset fields: vocab_size, seq_len, ...
    seed: int = 0
    optimizer: str = "muon"
    lr_mult: float = 1.0
    matrix_lr_mult: float = 1.0
    adam_lr_mult: float = 1.0
    lr_width_exponent: float = -0.5  # AdamW lrs x (d_model/768)^this (other values: planted bug)
    evals: int = 10
    compile: bool = False
    convention: str | None = None  # which params `ratio` counts (a label, not the result)
    kind: str = "single"  # isoflop | series | one_knob | lr_sweep | single
    study: str | None = None
    budget: float | None = None  # the FLOPs budget it was planned for, if any
    wandb: str | None = None  # W&B project the run logs to (how it runs, not what it is)

    def __post_init__(self):
        unknown = set(self.overrides) - set(OVERRIDABLE)
        if unknown:
            raise UserError(
                f"unknown preset override(s) {sorted(unknown)}; choose from {OVERRIDABLE}"
            )
        self.data, self.tokenizer = (
            str(Path(self.data).resolve()),
            str(Path(self.tokenizer).resolve()),
        )

    def identity(self) -> dict:
        """Everything that determines the result, and nothing else (not kind, study, W&B,
        workers)."""
        d = asdict(self)
        for k in ("convention", "kind", "study", "budget", "wandb"):
            d.pop(k)
        if self.lr_width_exponent == -0.5:  # the default keeps the ids runs had before the field
            d.pop("lr_width_exponent")
        d["overrides"] = {k: v for k, v in self.overrides.items() if k not in NOT_IDENTITY}
        # the model actually trained: a preset whose family changes (the cpu preset's heads did)
        # gives new ids, so a project never mixes runs of the old family into the new one's fits
        d["model"] = self.preset_config().model_config(self.depth).to_dict()
        return d

    @property
    def run_id(self) -> str:
        return run_id(self.identity())

    def preset_config(self) -> Preset:
        """The preset this run trains with, its overrides applied. A spec is a record (stored, sent
        to workers as JSON), so it names its preset; this is the one place the name is resolved."""
        return get_preset(self.preset).with_overrides(**self.overrides)

    def plan(self) -> Plan:
        return plan_for_steps(self.depth, self.steps, self.preset_config(), self.convention)

    def train_fields(self, out: str | os.PathLike, threads: int | None = None) -> dict:
        """The trainer's config for this run as plain fields (`TrainConfig`'s names): what a
        sweep writes for a fresh process (``miniseries train --config``), without torch."""
        return dict(
            depth=self.depth, out=str(out), data=self.data, tokenizer=self.tokenizer,
            preset=self.preset, steps=self.steps, convention=self.convention, seed=self.seed,
            optimizer=self.optimizer, lr_mult=self.lr_mult, matrix_lr_mult=self.matrix_lr_mult,
            adam_lr_mult=self.adam_lr_mult, lr_width_exponent=self.lr_width_exponent,
            evals=self.evals, compile=self.compile, overrides=self._overrides(threads),
            wandb=self.wandb, kind=self.kind, study=self.study,
        )  # fmt: skip

    def train_config(self, out: str | os.PathLike, threads: int | None = None):
        """The trainer's config for this run (what a forked worker trains)."""
        from miniseries.train.trainer import TrainConfig  # torch: only where a run is trained

        return TrainConfig(**self.train_fields(out, threads))

    def _overrides(self, threads: int | None) -> dict:
        """The preset overrides a run trains with: the spec's, plus the slot's thread count."""
        if threads and "threads" not in self.overrides:
            return {**self.overrides, "threads": threads}
        return dict(self.overrides)

    def estimated_s(self) -> float:
        """Rough wall time of training this run on a CPU (see STEP_S); used only to order runs."""
        plan = self.plan()
        step_flops = plan.flops_per_token * plan.tokens / max(1, plan.steps)
        return plan.steps * (STEP_S + step_flops / PEAK_FLOPS)

    def label(self) -> str:
        budget = f" @ {self.budget:.3g}" if self.budget else ""
        return f"d{self.depth}{budget} ({self.steps} steps, {self.run_id})"


def isoflop_specs(
    budgets, depths, preset: Preset = CPU, *, data: str, tokenizer: str, overrides=None,
    min_steps: int | None = None, study: str | None = None, log=print, **kw,
) -> list[RunSpec]:  # fmt: skip
    """Each depth at each budget for exactly the whole steps the budget buys. Depths whose
    horizon is under ``min_steps`` (default: the preset's) are skipped with a note. ``preset`` is
    the named preset; ``overrides`` (part of every run's identity) are applied to it here."""
    p = preset.with_overrides(**(overrides or {}))
    min_steps = p.min_steps if min_steps is None else min_steps
    specs = []
    for c in budgets:
        skipped = []
        for d in depths:
            plan = plan_isoflop(d, c, p, kw.get("convention"))
            if plan.steps < min_steps:
                skipped.append(f"d{d} ({plan.steps})")
                continue
            specs.append(_spec(plan, "isoflop", c, preset, data, tokenizer, overrides, study, kw))
        if skipped:
            log(
                f"note: budget {c:.3g}: skipping {', '.join(skipped)}: fewer than {min_steps} "
                "steps (the preset's min_steps) is too short to mean anything"
            )
    return specs


def series_specs(
    depths, ratio: float | None, preset: Preset = CPU, *, data: str, tokenizer: str,
    overrides=None, study: str | None = None, **kw,
) -> list[RunSpec]:  # fmt: skip
    """Each depth trained to ratio x params tokens (params counted by ``convention``)."""
    p = preset.with_overrides(**(overrides or {}))
    return [
        _spec(
            plan_for_depth(d, p, ratio, kw.get("convention")),
            "series",
            None,
            preset,
            data,
            tokenizer,
            overrides,
            study,
            kw,
        )  # fmt: skip
        for d in depths
    ]


def _spec(plan, kind, budget, preset, data, tokenizer, overrides, study, kw) -> RunSpec:
    overrides = dict(overrides or {})
    p = preset.with_overrides(**overrides)
    if p.batch_exponent:  # the batch the rule chose, and its references, travel with the run
        overrides |= dict(
            batch_tokens=plan.batch_tokens, ref_batch=p.reference_batch(),
            ref_tokens=p.reference_tokens(),
        )  # fmt: skip
    return RunSpec(
        depth=plan.depth, steps=plan.steps, data=data, tokenizer=tokenizer, preset=preset.name,
        overrides=overrides, kind=kind, study=study, budget=budget, **kw,
    )  # fmt: skip
