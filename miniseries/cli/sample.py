"""`miniseries sample RUN_DIR --prompt "..."`: text from a trained checkpoint."""


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="print text sampled from a run's checkpoint")
    p.add_argument("run_dir", help="a run folder made by `miniseries train`")
    p.add_argument("--prompt", default="The", help="text to continue")
    p.add_argument("--tokens", type=int, default=64, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args) -> int:
    import math

    from miniseries.cli.common import require
    from miniseries.train.run_folder import load_run

    require(args.tokens >= 0, f"--tokens must be >= 0, got {args.tokens}")
    require(args.top_k >= 1, f"--top-k must be at least 1, got {args.top_k}")
    t = args.temperature
    require(math.isfinite(t) and t >= 0, f"--temperature must be >= 0 (0: greedy), got {t}")
    model, tokenizer = load_run(args.run_dir)
    ids = [tokenizer.bos_id] + tokenizer.encode(args.prompt)
    out = model.generate(ids, args.tokens, args.temperature, args.top_k, args.seed)
    print(args.prompt + tokenizer.decode(out))
    return 0
