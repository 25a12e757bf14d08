"""Validation bits-per-byte: a loss that does not depend on the tokenizer.

bpb = (sum of target-token losses in nats) / (ln 2 * sum of the UTF-8 bytes of those targets).
Special tokens (0 bytes, e.g. <|bos|>) are left out of both sums, so predicting a BOS neither helps
nor hurts. Rows are striped across DDP ranks and the two sums all-reduced, so every rank returns the
same number and it equals the single-process one.
"""

import math

import numpy as np


def bpb_from_sums(nats: float, nbytes: float) -> float:
    """Bits per byte from summed target losses (nats) and summed target bytes; nan if no bytes."""
    return nats / (math.log(2) * nbytes) if nbytes > 0 else float("nan")


def evaluate_bpb(
    model, rows: np.ndarray, token_bytes: np.ndarray, batch_size: int, device
) -> float:
    """bpb of ``model`` on fixed val ``rows`` [R, T+1]; ``model(x, y, loss_reduction='none')``
    must return per-token losses [B, T] in nats."""
    import torch
    import torch.distributed as dist

    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    mine = torch.from_numpy(np.ascontiguousarray(rows[rank::world], dtype=np.int64))
    tb = torch.as_tensor(np.asarray(token_bytes), dtype=torch.int64, device=device)
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # nats, bytes
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(mine), batch_size):
            batch = mine[i : i + batch_size].to(device)
            x, y = batch[:, :-1], batch[:, 1:]
            loss = model(x, y, loss_reduction="none").double()
            nb = tb[y]
            sums[0] += torch.where(nb > 0, loss, 0.0).sum()
            sums[1] += nb.sum()
    model.train(was_training)
    if distributed:
        dist.all_reduce(sums)
    return bpb_from_sums(sums[0].item(), sums[1].item())
