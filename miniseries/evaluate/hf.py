"""The CORE evaluator over Hugging Face ``transformers`` causal LMs (GPT-2 and friends).

``transformers`` is an optional extra (``pip install 'miniseries[hf]'``); it is imported inside
the functions so nothing else needs it. Users with hub access can measure the GPT-2 family's
CORE with ``miniseries core --hf openai-community/gpt2``; the published values (in
report/reference.py) are 0.1139 / 0.1849 / 0.2146 / 0.2565 for small / medium / large / XL on
the public bundle.
"""

from pathlib import Path

from miniseries.errors import UserError


def _require_transformers():
    try:
        import transformers
    except ImportError:
        raise UserError(
            "--hf needs the transformers package: pip install 'miniseries[hf]' "
            "(or pip install transformers)"
        ) from None
    return transformers


class HFModel:
    """``idx -> logits`` plus ``max_seq_len`` (the model's position limit, e.g. 1024 for GPT-2)."""

    def __init__(self, model, max_seq_len: int | None = None):
        self.model = model
        cfg = model.config
        limit = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
        self.max_seq_len = max_seq_len or limit
        self.cfg = None  # not our GPT: core.model_adapter reads max_seq_len

    def eval(self):
        self.model.eval()
        return self

    def __call__(self, idx):
        return self.model(input_ids=idx).logits


class HFTokenizer:
    """``encode`` without added special tokens; BOS is the model's BOS (GPT-2: <|endoftext|>)."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else None
        bos = bos if bos is not None else tokenizer.eos_token_id
        if bos is None:
            raise UserError(
                "this tokenizer has neither a BOS nor an EOS token; CORE starts every "
                "sequence with one: pick a model whose tokenizer defines one"
            )
        self.bos_id = int(bos)

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids))


def load_hf(name: str, device="cpu", dtype: str | None = None) -> tuple[HFModel, HFTokenizer]:
    """A hub name or local folder -> (model adapter, tokenizer adapter), in eval mode."""
    tf = _require_transformers()
    import torch

    kwargs = {}
    if dtype:
        kwargs["dtype"] = getattr(torch, dtype)
    try:
        model = tf.AutoModelForCausalLM.from_pretrained(name, **kwargs)
        tok = tf.AutoTokenizer.from_pretrained(name)
    except OSError as e:
        where = "folder" if Path(name).exists() else "hub model (needs network access)"
        raise UserError(f"could not load {name!r} as a {where}: {e}".splitlines()[0]) from None
    model.to(device).eval()
    return HFModel(model), HFTokenizer(tok)


def batch_tokens_for(model: HFModel) -> int:
    """Tokens per evaluation batch: about 2**26 logits (256 MiB in fp32), within [1024, 65536]."""
    vocab = getattr(model.model.config, "vocab_size", 50257)
    return int(max(1024, min(65536, 2**26 // vocab)))
