"""Loading a finished run's model and tokenizer (for sampling and CORE)."""

import json
from pathlib import Path

from miniseries.errors import UserError


def load_run(run_dir: str, device: str = "cpu"):
    """(model in eval mode, tokenizer) from a run folder made by `miniseries train`."""
    import torch

    from miniseries.config import ModelConfig
    from miniseries.model import GPT
    from miniseries.tokenizer import Tokenizer
    from miniseries.train import CHECKPOINT, CONFIG

    run = Path(run_dir)
    if not (run / CONFIG).exists() or not (run / CHECKPOINT).exists():
        raise UserError(f"{run} is not a finished run folder (needs {CONFIG} and {CHECKPOINT})")
    config = json.loads((run / CONFIG).read_text())
    model_cfg = ModelConfig(**config["model"])
    try:
        state = torch.load(run / CHECKPOINT, map_location=device, weights_only=True)
    except Exception as e:
        raise UserError(
            f"checkpoint {run / CHECKPOINT} cannot be loaded safely ({type(e).__name__}: it is "
            "damaged, or holds more than weights, e.g. code to run); use a checkpoint you trust"
        ) from e
    if state.get("model_config") != model_cfg.to_dict():
        raise UserError(f"checkpoint {run / CHECKPOINT} does not match {run / CONFIG}")
    model = GPT(model_cfg).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    tokenizer = Tokenizer.load(config["train"]["tokenizer"], vocab_size=model_cfg.vocab_size)
    return model, tokenizer
