"""CORE (DCLM): 22 in-context-learning tasks, each accuracy centered by its random baseline.

How one example is scored (as nanochat's ``core_eval.py`` and MosaicML's ICL datasets do):

- Few-shot examples are drawn with ``random.Random(1234 + i)`` from the task's other examples
  (never example ``i`` itself) and rendered before the question, each followed by a blank line.
- multiple_choice: one prompt per choice, ``query + delimiter + choice``; the continuation is
  what follows the choices' common token prefix. schema: one prompt per context option,
  ``option + delimiter + continuation``; the continuation is the common token suffix. In both the
  prediction is the option with the lowest *mean* per-token loss over its continuation.
- language_modeling: correct iff the greedy argmax reproduces every continuation token.
- Every sequence starts with BOS; one longer than the model's window is cropped on the *left*,
  so the continuation is always scored.

Speed: all sequences of a task are sorted by length and packed into padded batches (right
padding with BOS never changes the scores of a causal model). Under torch.distributed each rank
takes every world_size-th example and the per-task counts are all-reduced. Task data is shuffled
with ``random.Random(1337)`` so ``max_per_task`` takes a fair sample.
"""

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from rich.progress import TimeRemainingColumn

from miniseries.errors import UserError
from miniseries.evaluate.bundle import (
    CORE_LABELS,
    LM,
    MC,
    SCHEMA,
    Bundle,
    Task,
    load_bundle,
    read_task_rows,
)
from miniseries.evaluate.get_bundle import resolve_bundle
from miniseries.progress import progress_bar
from miniseries.train.run_folder import write_core

SHUFFLE_SEED = 1337
FEWSHOT_SEED = 1234


class TokenizerLike(Protocol):
    bos_id: int

    def encode(self, text: str) -> list[int]: ...


# -- prompts ----------------------------------------------------------------------------------


def render_mc(item: dict, delimiter: str, fewshot: Sequence[dict] = ()) -> list[str]:
    """One prompt per choice: few-shot blocks (gold answers), then ``query + delim + choice``."""
    prefix = "".join(f"{ex['query']}{delimiter}{ex['choices'][ex['gold']]}\n\n" for ex in fewshot)
    return [f"{prefix}{item['query']}{delimiter}{choice}" for choice in item["choices"]]


def render_schema(item: dict, delimiter: str, fewshot: Sequence[dict] = ()) -> list[str]:
    """One prompt per context option, all ending in the shared continuation."""
    prefix = "".join(
        f"{ex['context_options'][ex['gold']]}{delimiter}{ex['continuation']}\n\n" for ex in fewshot
    )
    return [f"{prefix}{opt}{delimiter}{item['continuation']}" for opt in item["context_options"]]


def render_lm(item: dict, delimiter: str, fewshot: Sequence[dict] = ()) -> tuple[str, str]:
    """(prompt without, prompt with) the continuation; contexts are stripped of stray spaces."""
    prefix = "".join(
        f"{ex['context'].strip()}{delimiter}{ex['continuation']}\n\n" for ex in fewshot
    )
    head = f"{prefix}{item['context'].strip()}{delimiter}"
    return head.strip(), head + item["continuation"]


class _AllBut(Sequence):
    """range(n) without i, as a lazy sequence: random.sample over it equals sampling the list."""

    def __init__(self, n: int, skip: int):
        self.n, self.skip = n, skip

    def __len__(self) -> int:
        return self.n - 1

    def __getitem__(self, j: int) -> int:
        if not 0 <= j < self.n - 1:
            raise IndexError(j)  # also ends iteration (random.sample may list() small ones)
        return j if j < self.skip else j + 1


def fewshot_indices(i: int, n: int, k: int) -> list[int]:
    """k distinct indices of other examples, fixed per example (seed 1234 + i), never i."""
    if k <= 0 or n <= 1:
        return []
    return random.Random(FEWSHOT_SEED + i).sample(_AllBut(n, i), min(k, n - 1))


# -- tokens -----------------------------------------------------------------------------------


def common_prefix(seqs: list[list[int]]) -> int:
    """Length of the longest common prefix (the lexicographic min and max bound all others)."""
    lo, hi = min(seqs), max(seqs)
    for j, (a, b) in enumerate(zip(lo, hi)):
        if a != b:
            return j
    return len(lo)


def common_suffix(seqs: list[list[int]]) -> int:
    n = min(len(s) for s in seqs)
    for j in range(1, n + 1):
        if any(s[-j] != seqs[0][-j] for s in seqs):
            return j - 1
    return n


def crop_left(tokens: list[int], start: int, end: int, max_len: int | None):
    """Keep the last ``max_len`` tokens; the scored span [start, end) moves with them."""
    if max_len is None or len(tokens) <= max_len:
        return tokens, start, end
    cut = len(tokens) - max_len
    return tokens[cut:], max(1, start - cut), end - cut


def example_sequences(
    task: Task, item: dict, fewshot: Sequence[dict], tok: TokenizerLike, max_len: int | None
) -> list[tuple[list[int], int, int]]:
    """(tokens, start, end) per option; tokens[start:end] is the scored continuation."""
    encode = lambda s: [tok.bos_id, *tok.encode(s)]  # noqa: E731
    if task.task_type == MC:
        seqs = [encode(p) for p in render_mc(item, task.delimiter, fewshot)]
        start = common_prefix(seqs)
        spans = [(s, start, len(s)) for s in seqs]
    elif task.task_type == SCHEMA:
        seqs = [encode(p) for p in render_schema(item, task.delimiter, fewshot)]
        suffix = common_suffix(seqs)
        spans = [(s, len(s) - suffix, len(s)) for s in seqs]
    elif task.task_type == LM:
        without, with_ = (encode(p) for p in render_lm(item, task.delimiter, fewshot))
        # A tokenizer may merge across the boundary; then score from the common prefix on.
        start = (
            len(without) if with_[: len(without)] == without else common_prefix([without, with_])
        )
        spans = [(with_, start, len(with_))]
    else:
        raise UserError(f"unknown task type {task.task_type!r}; expected one of mc/schema/lm")
    out = []
    for tokens, start, end in spans:
        start = max(1, min(start, end - 1))  # at least one scored token, never position 0
        out.append(crop_left(tokens, start, end, max_len))
    return out


# -- the model --------------------------------------------------------------------------------


def model_adapter(model) -> tuple[Callable, int | None]:
    """(idx -> logits callable, max sequence length) for our GPT or any wrapped model."""
    cfg = getattr(model, "cfg", None)
    if cfg is not None and hasattr(cfg, "seq_len"):
        return model, cfg.seq_len
    return model, getattr(model, "max_seq_len", None)


def _score_batch(forward, rows, pad_id: int, device):
    """Mean continuation loss and all-argmax-correct per row of one padded batch."""
    import torch
    import torch.nn.functional as F

    T = max(len(r[0]) for r in rows)
    idx = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T - 1), dtype=torch.bool)
    for b, (tokens, start, end) in enumerate(rows):
        idx[b, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[b, start - 1 : end - 1] = True  # logits at p predict token p + 1
    idx, mask = idx.to(device), mask.to(device)
    logits = forward(idx)[:, :-1].float()
    targets = idx[:, 1:]
    losses = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    mean_loss = (losses * mask).sum(1) / mask.sum(1)
    hit = ((logits.argmax(-1) == targets) | ~mask).all(1)
    return mean_loss.cpu().tolist(), hit.cpu().tolist()


def _batches(order: list[int], lengths: list[int], budget: int, max_rows: int):
    """Group row ids (sorted by length) so that rows x longest <= budget tokens."""
    batch, longest = [], 0
    for r in order:
        longest_next = max(longest, lengths[r])
        if batch and (longest_next * (len(batch) + 1) > budget or len(batch) >= max_rows):
            yield batch
            batch, longest_next = [], lengths[r]
        batch.append(r)
        longest = longest_next
    if batch:
        yield batch


def evaluate_task(
    forward,
    max_len: int | None,
    tok: TokenizerLike,
    task: Task,
    data: list[dict],
    indices: Sequence[int],
    device="cpu",
    batch_tokens: int = 16384,
    max_rows: int = 256,
) -> tuple[int, int]:
    """(correct, evaluated) over ``data[i] for i in indices``; few-shot drawn from all of data."""
    rows, owner = [], []  # flattened (tokens, start, end) and the example each belongs to
    for i in indices:
        shots = [data[j] for j in fewshot_indices(i, len(data), task.num_fewshot)]
        for seq in example_sequences(task, data[i], shots, tok, max_len):
            rows.append(seq)
            owner.append(i)
    lengths = [len(r[0]) for r in rows]
    order = sorted(range(len(rows)), key=lambda r: lengths[r])
    loss, hit = [0.0] * len(rows), [False] * len(rows)
    for batch in _batches(order, lengths, batch_tokens, max_rows):
        b_loss, b_hit = _score_batch(forward, [rows[r] for r in batch], tok.bos_id, device)
        for r, lo, h in zip(batch, b_loss, b_hit):
            loss[r], hit[r] = lo, h
    by_example: dict[int, list[int]] = {}
    for r, i in enumerate(owner):
        by_example.setdefault(i, []).append(r)
    correct = 0
    for i, rs in by_example.items():
        if task.task_type == LM:
            correct += int(hit[rs[0]])
        else:
            pick = min(range(len(rs)), key=lambda k: loss[rs[k]])
            correct += int(pick == data[i]["gold"])
    return correct, len(by_example)


# -- all tasks --------------------------------------------------------------------------------


@dataclass
class TaskResult:
    accuracy: float
    centered: float
    n: int
    random_baseline: float
    num_fewshot: int
    task_type: str
    seconds: float


@dataclass
class CoreResult:
    """Per-task accuracy and centered score, the aggregate, and what it is *not* (missing)."""

    tasks: dict[str, TaskResult]
    core: float
    label: str  # 'CORE' only when all 22 tasks ran; else 'CORE-<n>'
    missing: list[str]
    seconds: float
    examples: int
    max_per_task: int | None = None
    bundle: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line that never passes a partial score off as CORE."""
        text = f"{self.label} = {self.core:.4f}"
        if self.missing:
            text += f" (missing: {', '.join(self.missing)})"
        if self.max_per_task:
            text += f" [at most {self.max_per_task} examples per task]"
        return text

    def to_dict(self) -> dict:
        d = asdict(self)
        d["examples_per_s"] = self.examples_per_s
        d["description"] = self.describe()
        return d


def core_label(evaluated: Sequence[str]) -> str:
    return "CORE" if set(CORE_LABELS) <= set(evaluated) else f"CORE-{len(evaluated)}"


def centered(accuracy: float, random_baseline: float) -> float:
    return (accuracy - random_baseline) / (1.0 - random_baseline)


def load_task_data(bundle: Bundle, task: Task, seed: int = SHUFFLE_SEED) -> list[dict]:
    """The task's rows, shuffled with a fixed seed (files are often ordered by topic)."""
    data = read_task_rows(bundle, task)
    random.Random(seed).shuffle(data)
    return data


def _dist():
    """(rank, world) under torch.distributed, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce(values: list[int], device) -> list[int]:
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.long, device=device)
    dist.all_reduce(t)
    return [int(v) for v in t.tolist()]


def select_tasks(bundle: Bundle, tasks: Sequence[str] | None) -> list[Task]:
    if tasks is None:
        return list(bundle.tasks)
    unknown = [t for t in tasks if t not in {x.label for x in bundle.tasks}]
    if unknown:
        raise UserError(
            f"unknown or missing task(s) {', '.join(unknown)}; "
            f"this bundle has: {', '.join(t.label for t in bundle.tasks)}"
        )
    return [t for t in bundle.tasks if t.label in set(tasks)]


def evaluate_core(
    model,
    tokenizer: TokenizerLike,
    bundle_dir: str | Path,
    max_per_task: int | None = None,
    device="cpu",
    tasks: Sequence[str] | None = None,
    progress: bool = True,
    batch_tokens: int | None = None,
) -> CoreResult:
    """Evaluate ``model`` on every task of the bundle (or ``tasks``) and aggregate CORE.

    ``model`` is our GPT or any callable ``idx[B, T] -> logits[B, T, V]`` with ``max_seq_len``.
    ``batch_tokens`` caps tokens per forward pass (default: ~64M logits, at most 65536 tokens).
    """
    import torch

    if max_per_task is not None and max_per_task < 1:
        raise UserError(f"max_per_task must be at least 1 (or None for all), got {max_per_task}")
    bundle = load_bundle(bundle_dir)
    chosen = select_tasks(bundle, tasks)
    if not chosen:
        raise UserError(f"the bundle at {bundle.root} has no task data; build or fetch it again")
    forward, max_len = model_adapter(model)
    if hasattr(model, "eval"):
        model.eval()
    if batch_tokens is None:
        vocab = getattr(getattr(model, "cfg", None), "vocab_size", None) or 50304
        batch_tokens = int(max(1024, min(65536, 2**26 // vocab)))
    rank, world = _dist()
    results: dict[str, TaskResult] = {}
    t_start, total = time.time(), 0
    bar = progress_bar(progress and rank == 0, TimeRemainingColumn(), transient=True)
    with bar, torch.no_grad():
        bar_task = bar.add_task("CORE", total=len(chosen))
        for task in chosen:
            t0 = time.time()
            data = load_task_data(bundle, task)
            n = len(data) if max_per_task is None else min(max_per_task, len(data))
            mine = range(rank, n, world)
            correct, count = evaluate_task(
                forward, max_len, tokenizer, task, data, mine, device, batch_tokens
            )
            if world > 1:
                correct, count = _all_reduce([correct, count], device)
            acc = correct / count if count else 0.0
            results[task.label] = TaskResult(
                accuracy=acc,
                centered=centered(acc, task.random_baseline),
                n=count,
                random_baseline=task.random_baseline,
                num_fewshot=task.num_fewshot,
                task_type=task.task_type,
                seconds=time.time() - t0,
            )
            total += count
            bar.update(bar_task, advance=1, description=f"CORE {task.label}")
    evaluated = list(results)
    not_run = [label for label in CORE_LABELS if label not in results]
    core = sum(r.centered for r in results.values()) / len(results)
    return CoreResult(
        tasks=results,
        core=core,
        label=core_label(evaluated),
        missing=not_run,
        seconds=time.time() - t_start,
        examples=total,
        max_per_task=max_per_task,
        bundle=str(bundle.root),
    )


def format_table(result: CoreResult) -> str:
    """A plain-text table: one line per task, then the aggregate line."""
    lines = [f"{'task':<34} {'shots':>5} {'n':>6} {'accuracy':>9} {'centered':>9}"]
    for label, r in result.tasks.items():
        lines.append(
            f"{label:<34} {r.num_fewshot:>5} {r.n:>6} {r.accuracy:>9.4f} {r.centered:>9.4f}"
        )
    lines.append(result.describe())
    lines.append(
        f"{result.examples} examples in {result.seconds:.1f} s ({result.examples_per_s:.1f}/s)"
    )
    return "\n".join(lines)


def evaluate_run(
    run_dir: str | Path,
    model,
    tokenizer: TokenizerLike,
    bundle: str | Path | None = "offline",
    max_per_task: int | None = None,
    device="cpu",
    tasks: Sequence[str] | None = None,
    progress: bool = True,
    log=print,
) -> CoreResult:
    """Evaluate a run's (already loaded) model and write ``core.json`` into the run folder."""
    bundle_dir = resolve_bundle(bundle, log=log)
    result = evaluate_core(model, tokenizer, bundle_dir, max_per_task, device, tasks, progress)
    if _dist()[0] == 0:
        write_core(run_dir, result.to_dict())
    return result
