"""The yardstick: published figures for GPT-2 and GPT-3, each with where it comes from.

Nothing here is measured by miniseries. GPT-2's CORE and per-task centered accuracies were measured
by nanochat on the public GPT-2 weights; GPT-3 has no public weights, so only the accuracies its
paper reports exist, and its CORE has to be *estimated* (see report/calibrate.py). The figures
were checked against ``reference/gpt3_core_inputs.csv`` (shared data, not in this repository);
each constant names the CSV row's source cell.

GPT-2's training tokens are not public (nanochat's notebook says "~100B" in prose only) and its
training compute is unknown, so both are None here.
"""

from dataclasses import dataclass, field

# Where the figures come from (the CSV's `source` column).
NANOCHAT_NB = "karpathy/nanochat@92d63d4 dev/estimate_gpt3_core.ipynb"
SRC_BASELINES = f"{NANOCHAT_NB} cell[8] In[3] (BASELINES dict)"
SRC_GPT2_CORE = f"{NANOCHAT_NB} cell[9] In[4] output (eval_bundle/openai-community-gpt2*.csv)"
SRC_GPT2_CENTERED = f"{NANOCHAT_NB} cell[10] In[5] output (centered, 4 d.p.)"
SRC_GPT3_ACC = (
    f"GPT-3 paper (Brown et al. 2020) Table H.1, as typed in {NANOCHAT_NB} cell[13] In[6]"
)
SRC_GPT3_SIZES = "GPT-3 paper (Brown et al. 2020) Table 2.1 (params; 300B training tokens each)"
SRC_GPT3_COMPUTE = "GPT-3 paper (Brown et al. 2020) Table D.1: 3.64e3 PF-days = 3.14e23 FLOPs"
SRC_GPT2_PARAMS = (
    f"{NANOCHAT_NB} cell[9] (params of the released weights; the GPT-2 paper's Table 2 says"
    " 117M/345M/762M/1542M, counted differently)"
)
SRC_NANOCHAT_FIT = f"{NANOCHAT_NB} cell[18] In[9] output (simple fit)"
SRC_NANOCHAT_EST = f"{NANOCHAT_NB} cell[29] In[14] output (final = mean of simple and ridge)"
SRC_NANOCHAT_LAW = "nanochat miniseries v1 (Jan 2026): CORE = 1 - 3.7555*C^-0.0344, 8xH100 at $3/h"

# The 6 tasks that CORE shares with the GPT-3 paper, in the notebook's order. GPT-3 figures are
# zero-shot for HellaSwag-0 and LAMBADA, few-shot (K=20/50) for the other four.
TASKS = ("hellaswag_zeroshot", "lambada_openai", "hellaswag", "piqa", "arc_easy", "arc_challenge")

# Random-guess accuracy per task (the centering baseline, used for GPT-2 and GPT-3 alike).
RANDOM_BASELINES = {  # SRC_BASELINES
    "hellaswag_zeroshot": 0.25,
    "lambada_openai": 0.0,
    "hellaswag": 0.25,
    "piqa": 0.5,
    "arc_easy": 0.25,
    "arc_challenge": 0.25,
}


@dataclass(frozen=True)
class ReferenceModel:
    """One published model. ``scores`` are per-task figures in TASKS order: centered accuracies
    for GPT-2 (what nanochat printed), raw accuracies for GPT-3 (what the paper printed)."""

    name: str
    params: float
    core: float | None  # measured CORE (GPT-2 only)
    scores: tuple[float, ...]
    tokens: float | None = None  # training tokens; None where not public
    train_flops: float | None = None  # real training compute; None where unknown
    sources: tuple[str, ...] = field(default=())


GPT2_MODELS = (
    ReferenceModel(
        "GPT-2 Small",
        124e6,
        0.1139,
        (0.0780, 0.3229, 0.0772, 0.2459, 0.2166, -0.0375),
        sources=(SRC_GPT2_PARAMS, SRC_GPT2_CORE, SRC_GPT2_CENTERED),
    ),
    ReferenceModel(
        "GPT-2 Medium",
        355e6,
        0.1849,
        (0.1867, 0.4260, 0.1933, 0.3400, 0.3067, 0.0160),
        sources=(SRC_GPT2_PARAMS, SRC_GPT2_CORE, SRC_GPT2_CENTERED),
    ),
    ReferenceModel(
        "GPT-2 Large",
        774e6,
        0.2146,
        (0.2533, 0.4880, 0.2587, 0.3960, 0.3800, 0.0187),
        sources=(SRC_GPT2_PARAMS, SRC_GPT2_CORE, SRC_GPT2_CENTERED),
    ),
    ReferenceModel(
        "GPT-2 XL",
        1558e6,
        0.2565,
        (0.3360, 0.5230, 0.3493, 0.4500, 0.4600, 0.0653),
        sources=(SRC_GPT2_PARAMS, SRC_GPT2_CORE, SRC_GPT2_CENTERED),
    ),
)

GPT3_TOKENS = 300e9  # SRC_GPT3_SIZES
GPT3_175B_TRAIN_FLOPS = 3.14e23  # SRC_GPT3_COMPUTE

_GPT3 = (
    # name, params, raw accuracies (TASKS order)
    ("GPT-3 Small", 125e6, (0.337, 0.427, 0.335, 0.643, 0.427, 0.255)),
    ("GPT-3 Medium", 350e6, (0.436, 0.543, 0.431, 0.694, 0.510, 0.284)),
    ("GPT-3 Large", 760e6, (0.510, 0.604, 0.513, 0.720, 0.581, 0.323)),
    ("GPT-3 XL", 1.3e9, (0.547, 0.636, 0.549, 0.743, 0.591, 0.367)),
    ("GPT-3 2.7B", 2.7e9, (0.628, 0.671, 0.629, 0.754, 0.621, 0.395)),
    ("GPT-3 6.7B", 6.7e9, (0.674, 0.703, 0.673, 0.778, 0.658, 0.437)),
    ("GPT-3 13B", 13e9, (0.709, 0.725, 0.713, 0.799, 0.691, 0.448)),
    ("GPT-3 175B", 175e9, (0.789, 0.762, 0.793, 0.823, 0.701, 0.515)),
)
GPT3_MODELS = tuple(
    ReferenceModel(
        name,
        params,
        None,
        accs,
        tokens=GPT3_TOKENS,
        train_flops=GPT3_175B_TRAIN_FLOPS if name == "GPT-3 175B" else None,
        sources=(SRC_GPT3_SIZES, SRC_GPT3_ACC)
        + ((SRC_GPT3_COMPUTE,) if name == "GPT-3 175B" else ()),
    )
    for name, params, accs in _GPT3
)

# nanochat's published results, for checking ours against.
NANOCHAT_SIMPLE_FIT = {"slope": 0.6639, "intercept": 0.0168, "r2": 0.996}  # SRC_NANOCHAT_FIT
NANOCHAT_RIDGE_R2 = 0.9916  # alpha=0.01; notebook cell[21] In[10] output
NANOCHAT_GPT3_CORE = {  # SRC_NANOCHAT_EST (rounded to 3 d.p. as nanochat quotes them)
    "GPT-3 Small": 0.148,
    "GPT-3 Medium": 0.216,
    "GPT-3 Large": 0.266,
    "GPT-3 XL": 0.291,
    "GPT-3 2.7B": 0.329,
    "GPT-3 6.7B": 0.361,
    "GPT-3 13B": 0.385,
    "GPT-3 175B": 0.427,
}
NANOCHAT_CORE_LAW = (3.7555, 0.0344)  # (A, k) in CORE = 1 - A*C^-k; SRC_NANOCHAT_LAW
# nanochat's quoted costs under that law on 8xH100 at $3/GPU-hour (SRC_NANOCHAT_LAW).
NANOCHAT_QUOTES = {
    "GPT-2 small": {"minutes": 8.0, "usd": 3.0},
    "GPT-2 XL": {"hours": 22.7, "usd": 546.0},
    "GPT-3 175B": {"flops": 5.7e23},
}


def centered(accuracy: float, baseline: float) -> float:
    """CORE's centering: 0 at random guessing, 1 at perfect (DCLM paper)."""
    return (accuracy - baseline) / (1.0 - baseline)


def gpt3_centered(model: ReferenceModel) -> tuple[float, ...]:
    """A GPT-3 model's paper accuracies centered with the task baselines (TASKS order)."""
    return tuple(centered(a, RANDOM_BASELINES[t]) for a, t in zip(model.scores, TASKS))


def gpt2_core_targets() -> dict[str, float]:
    """Measured CORE of the four GPT-2 models: the first extrapolation targets."""
    return {m.name: m.core for m in GPT2_MODELS}
