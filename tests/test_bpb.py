"""bits-per-byte: known answers, special tokens excluded, batch- and rank-independent."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from miniseries.train.bpb import bpb_from_sums, evaluate_bpb

V, BOS = 50, 49


class Uniform(torch.nn.Module):
    """Uniform logits: every target costs ln V nats."""

    def __init__(self, vocab=V):
        super().__init__()
        self.vocab = vocab
        self.bias = torch.nn.Parameter(torch.zeros(vocab))

    def forward(self, x, y, loss_reduction="mean"):
        logits = torch.zeros(*x.shape, self.vocab) + self.bias
        loss = F.cross_entropy(logits.view(-1, self.vocab), y.reshape(-1), reduction="none")
        return loss.view(x.shape)


class HatesBos(Uniform):
    """Uniform, except an absurd loss wherever the target is BOS (which bpb must ignore)."""

    def forward(self, x, y, loss_reduction="mean"):
        loss = super().forward(x, y, loss_reduction)
        return torch.where(y == BOS, 1e6, loss)


def fixture_rows(n=23, t=16, seed=0):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, V - 1, size=(n, t + 1))
    rows[:, 0] = BOS
    rows[rng.random(rows.shape) < 0.1] = BOS  # BOS targets scattered inside rows
    token_bytes = rng.integers(1, 5, size=V).astype(np.int32)
    token_bytes[BOS] = 0
    return rows, token_bytes


def test_bpb_from_sums():
    assert bpb_from_sums(8 * math.log(2), 8) == pytest.approx(1.0)
    assert bpb_from_sums(3.0, 2) == pytest.approx(3.0 / (2 * math.log(2)))
    assert math.isnan(bpb_from_sums(1.0, 0))


def test_uniform_model_known_answer():
    rows, token_bytes = fixture_rows()
    targets = rows[:, 1:]
    nb = token_bytes[targets]
    expected = math.log2(V) * np.count_nonzero(nb) / nb.sum()
    got = evaluate_bpb(Uniform(), rows, token_bytes, batch_size=5, device="cpu")
    assert got == pytest.approx(expected, rel=1e-6)  # float32 losses
    # loss at special-token targets counts for nothing
    hates = evaluate_bpb(HatesBos(), rows, token_bytes, 5, "cpu")
    assert hates == pytest.approx(expected, rel=1e-6)


def test_batch_size_does_not_matter_and_mode_is_restored():
    rows, token_bytes = fixture_rows(n=17)
    model = Uniform()
    with torch.no_grad():
        model.bias.copy_(torch.randn(V))  # a non-uniform model
    values = [evaluate_bpb(model, rows, token_bytes, b, "cpu") for b in (1, 4, 17, 100)]
    assert max(values) - min(values) < 1e-9
    assert model.training
    model.eval()
    evaluate_bpb(model, rows, token_bytes, 4, "cpu")
    assert not model.training


def _rank_main(rank, world, init, rows, token_bytes, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)  # the same model on both ranks
    model = Uniform()
    with torch.no_grad():
        model.bias.copy_(torch.randn(V))
    value = evaluate_bpb(model, rows, token_bytes, batch_size=3, device="cpu")
    np.save(f"{out}_{rank}.npy", np.array([value]))
    dist.destroy_process_group()


def test_two_ranks_all_reduce_to_the_single_process_value(tmp_path):
    import torch.multiprocessing as mp

    rows, token_bytes = fixture_rows(n=11)  # odd: ranks get 6 and 5 rows
    out = str(tmp_path / "bpb")
    init = f"file://{tmp_path / 'pg'}"
    mp.spawn(_rank_main, args=(2, init, rows, token_bytes, out), nprocs=2, join=True)
    torch.manual_seed(0)
    model = Uniform()
    with torch.no_grad():
        model.bias.copy_(torch.randn(V))
    single = evaluate_bpb(model, rows, token_bytes, batch_size=3, device="cpu")
    for rank in range(2):
        assert np.load(f"{out}_{rank}.npy")[0] == pytest.approx(single, rel=1e-12)
