"""Bad input: every subcommand, fuzzed with invalid values, exits 2 with one line, no traceback.

Each subcommand has a *base* argv that is valid (and cheap: --dry-run, tiny data, a store with no
runs) and a table of flags with values that are wrong for them. Hypothesis draws one to three
wrong flags and puts them after the base, so argparse's last-wins rule makes the wrong value the
one used. The product must refuse it before doing any work: exit code 2, exactly one stderr line
starting with "miniseries", no "Traceback". The table is keyed by `miniseries.cli.COMMANDS`, so a
new subcommand without a fuzz case fails `test_every_subcommand_has_a_fuzz_case`.
"""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniseries.cli import COMMANDS, main
from miniseries.store.db import open_store

POS_FLOAT = ["-1", "0", "-1e12", "nan", "inf", "-inf", "abc", "", "1e999"]
POS_INT = ["-1", "0", "-7", "abc", "1.5", "nan", "", "1e3"]
NONNEG_INT = ["-1", "-100", "abc", "2.5", ""]
DEPTHS = ["3-1", "0-2", "a-b", "", "1-70", "-1", "1,,x", "0"]
CHOICE = ["nope", "", "TOTAL", "cpu ", "../etc"]
FLOAT_LIST = ["-1", "0", "nan", "abc", "1e12,-1", "", "1e12,,x", "inf"]
PRESET = [
    ("--preset", CHOICE),
    ("--vocab-size", ["0", "-1", "100", "256", "abc"]),
    ("--seq-len", POS_INT),
    ("--batch-tokens", POS_INT + ["100"]),  # 100: not a whole number of 64-token rows
    ("--device-batch-size", POS_INT),
    ("--threads", POS_INT),
    ("--width-offset", ["-1", "abc"]),
]
RUN = [
    ("--convention", CHOICE),
    ("--seed", NONNEG_INT),
    ("--optimizer", CHOICE),
    ("--lr-mult", POS_FLOAT),
    ("--matrix-lr-mult", POS_FLOAT),
    ("--adam-lr-mult", POS_FLOAT),
    ("--evals", POS_INT),
]
EXEC = [("--workers", POS_INT), ("--nproc", POS_INT), ("--executor", CHOICE), ("--core", POS_INT)]
TINY = ["--vocab-size", "512", "--seq-len", "64", "--batch-tokens", "512"]
TINY += ["--device-batch-size", "4", "--val-tokens", "1024"]


@pytest.fixture(scope="module")
def ws(tiny_data, tmp_path_factory):
    """Files the base argvs point at: tiny data, CSVs good and bad, an empty store, a bundle-less
    run folder."""
    root = tmp_path_factory.mktemp("fuzz")
    tokens, tok = tiny_data
    good = root / "good.csv"
    rows = ["params,tokens,loss,budget"]
    for c in (1e18, 1e19, 1e20):
        for n in (2e7, 5e7, 1e8, 2e8, 5e8):
            d = c / (6 * n)
            rows.append(f"{n},{d},{1.69 + 406.4 / n**0.34 + 410.7 / d**0.28},{c}")
    good.write_text("\n".join(rows) + "\n")
    good2 = root / "good2.csv"  # a second family for `compare`: the same law with A x 1.1
    rows2 = ["params,tokens,loss,budget"]
    for c in (1e18, 1e19, 1e20):
        for n in (2e7, 5e7, 1e8, 2e8, 5e8):
            d = c / (6 * n)
            rows2.append(f"{n},{d},{1.69 + 1.1 * 406.4 / n**0.34 + 410.7 / d**0.28},{c}")
    good2.write_text("\n".join(rows2) + "\n")
    good4 = root / "good4.csv"  # four usable budgets: enough for `validate`'s rolling origin
    rows4 = ["params,tokens,loss,budget"]
    for c in (3e17, 1e18, 3e18, 1e19):
        for n in (1e7, 2e7, 5e7, 1e8, 2e8, 5e8):
            d = c / (6 * n)
            rows4.append(f"{n},{d},{1.69 + 406.4 / n**0.34 + 410.7 / d**0.28},{c}")
    good4.write_text("\n".join(rows4) + "\n")
    bad = {
        "nonnumeric.csv": "params,tokens,loss\n1e6,1e7,abc\n2e6,2e7,1.0\n",
        "missing.csv": "a,b\n1,2\n",
        "nan.csv": "params,tokens,loss\n1e6,nan,3.0\n2e6,2e7,nan\n",
        "empty.csv": "",
        "core_nan.csv": "flops,core\n1e12,nan\n2e12,0.1\n4e12,0.2\n",
        "core_text.csv": "flops,core\n1e12,x\n",
    }
    for name, text in bad.items():
        (root / name).write_text(text)
    project = root / "project"
    open_store(project).close()
    with open_store(root / "swept") as store:  # finished isoFLOP runs to predict from
        for line in rows[1:]:
            n, d, loss, c = map(float, line.split(","))
            rid = f"r{n:g}_{c:g}"
            store.ensure_run(rid, kind="isoflop", budget=c, params_total=int(n), tokens=int(d))
            store.update_run(rid, flops=6 * n * d, val_bpb=loss, status="done")
    (root / "notadb").write_bytes(b"this is not sqlite")
    (root / "notdb_project").mkdir()
    (root / "notdb_project" / "miniseries.db").write_bytes(b"garbage, not a database" * 10)
    return {
        "root": root,
        "tokens": str(tokens),
        "tok": str(tok),
        "good": str(good),
        "good2": str(good2),
        "good4": str(good4),
        "project": str(project),
        "swept": str(root / "swept"),
        **{k: str(root / k) for k in bad},
    }


def fuzz_table(ws) -> dict[str, tuple[list[str], list[tuple[str, list[str]]]]]:
    """command -> (valid base argv, [(flag, wrong values)])."""
    r = ws["root"]
    data = ["--data", ws["tokens"], "--tokenizer", ws["tok"]]
    bad_csvs = [ws[k] for k in ("nonnumeric.csv", "missing.csv", "nan.csv", "empty.csv")]
    bad_csvs += [str(r / "no_such.csv"), str(r)]
    project = ["--project", ws["project"]]
    bad_projects = [str(r / "nowhere"), str(r / "notdb_project")]
    return {
        "plan": (
            ["plan", "--depth", "3"],
            [
                ("--flops", POS_FLOAT + ["1e3", "1e40"]),
                ("--depth", DEPTHS[4:] + ["65", "2.5"]),
                ("--ratio", POS_FLOAT),
                ("--steps", POS_INT),
            ]
            + PRESET,
        ),  # fmt: skip
        "data": (
            ["data", "tokenize", "--corpus", str(r / "corpus_none"), "--tokenizer", ws["tok"]],
            [
                ("--val-fraction", ["0", "1", "-0.5", "2", "nan", "abc"]),
                ("--workers", POS_INT),
                ("--vocab", ["0", "100", "256", "abc", "1024"]),
            ],
        ),  # fmt: skip
        "tokenizer": (
            ["tokenizer", "train", "--corpus", str(r / "corpus_none"), "--out", str(r / "tk")],
            [
                ("--vocab", ["0", "100", "256", "-1", "abc"]),
                ("--max-chars", POS_INT),
                ("--preset", CHOICE),
            ],
        ),  # fmt: skip
        "train": (
            [
                "train",
                "--depth",
                "1",
                "--out",
                str(r / "train_run"),
                "--steps",
                "2",
                *data,
                *TINY,
                "--quiet",
            ],
            [
                ("--depth", DEPTHS[4:] + ["65"]),
                ("--steps", POS_INT),
                ("--ratio", POS_FLOAT),
                ("--flops", POS_FLOAT),
                ("--checkpoint-every", NONNEG_INT),
                ("--lr-width-exponent", ["nan", "inf", "abc"]),
                ("--device", ["junk", "cuda:x", "gpu", ""]),
                ("--data", [str(r / "nowhere")]),
                ("--out", ["/dev/null/x"]),
            ]
            + RUN
            + PRESET,
        ),  # fmt: skip
        "sweep": (
            ["sweep", "--flops", "3e11", "--depths", "1-2", "--dry-run", *data, *project],
            [("--flops", FLOAT_LIST), ("--depths", DEPTHS), ("--min-steps", NONNEG_INT)]
            + RUN
            + EXEC
            + PRESET,
        ),  # fmt: skip
        "series": (
            ["series", "--depths", "1-2", "--ratio", "8", "--dry-run", *data, *project],
            [("--ratio", POS_FLOAT), ("--depths", DEPTHS)] + RUN + EXEC + PRESET,
        ),
        "predict": (
            ["predict", "--flops", "1e21", "--project", ws["swept"], "--bootstrap", "10"],
            [
                ("--flops", POS_FLOAT),
                ("--bootstrap", ["-1", "abc"]),
                ("--convention", CHOICE),
                ("--project", bad_projects),
            ]
            + PRESET,
        ),  # fmt: skip
        "run": (
            ["run", "--flops", "1e12", "--dry-run", *data, *project],
            [("--flops", POS_FLOAT + ["1e3", "1e40"])] + RUN + EXEC + PRESET,
        ),
        "noise": (
            ["noise", "--flops", "1e12", "--depth", "2", "--dry-run", *data, *project],
            [
                ("--flops", POS_FLOAT),
                ("--depth", DEPTHS[4:] + ["65", "2.5", "0"]),
                ("--seeds", POS_INT + ["1"]),
            ]
            + RUN
            + EXEC
            + PRESET,
        ),  # fmt: skip
        "lr-sweep": (
            [
                "lr-sweep",
                "--depths",
                "1",
                "--steps",
                "2",
                "--mults",
                "0.5,1,2",
                *data,
                *TINY,
                "--project",
                str(r / "lr"),
                "--quiet",
            ],
            [
                ("--steps", POS_INT),
                ("--mults", FLOAT_LIST + ["1,2"]),
                ("--group", CHOICE),
                ("--depths", DEPTHS),
            ]
            + PRESET,
        ),  # fmt: skip
        "sample": (
            ["sample", str(r / "no_run")],
            [
                ("--tokens", ["-1", "abc"]),
                ("--top-k", ["0", "-3", "abc"]),
                ("--temperature", ["-1", "nan", "abc"]),
            ],
        ),  # fmt: skip
        "runs": (
            ["runs", *project],
            [("--kind", CHOICE), ("--status", CHOICE), ("--project", bad_projects)],
        ),
        "export": (
            ["export", *project, "--csv", str(r / "out.csv")],
            [
                ("--table", CHOICE),
                ("--project", bad_projects),
                ("--csv", [str(r), "/proc/nope/x.csv"]),
            ],
        ),  # fmt: skip
        "fit": (
            ["fit", ws["good"], "--bootstrap", "0"],
            [
                ("--convention", CHOICE),
                ("--drop-worst", ["-1", "abc", "1000"]),
                ("--bootstrap", ["-1", "abc"]),
                ("--seed", NONNEG_INT),
                ("--predict", FLOAT_LIST),
                ("--project", [ws["project"], *bad_projects]),
            ],
        ),  # fmt: skip
        "compare": (
            ["compare", ws["good"], ws["good2"], "--bootstrap", "20"],
            [
                ("--bootstrap", ["-1", "-100", "abc", "1.5", ""]),
                ("--convention", CHOICE),
                ("--seed", NONNEG_INT),
            ],
        ),  # fmt: skip
        "validate": (
            ["validate", ws["good4"], "--bootstrap", "0", "--min-fit-budgets", "2"],
            [
                ("--convention", CHOICE),
                ("--bootstrap", ["-1", "abc"]),
                ("--seed", NONNEG_INT),
                ("--min-fit-budgets", ["0", "-1", "abc", "1"]),
                ("--project", bad_projects),
            ],
        ),  # fmt: skip
        "core": (
            ["core", str(r / "no_run"), "--bundle", str(r / "no_bundle")],
            [
                ("--max-per-task", ["0", "-1", "abc"]),
                ("--device", ["junk", "cuda:x"]),
                ("--hf", ["gpt2"]),
            ],
        ),  # fmt: skip
        "calibrate": (["calibrate"], [("--alpha", ["-1", "0", "nan", "-inf", "abc"])]),
        "extrapolate": (
            ["extrapolate", "--core-law", "3.7555,0.0344"],
            [
                ("--core-law", ["1", "a,b", "-3.7,0.03", "3.7,-0.03", "3.7,0", "nan,0.03", ""]),
                ("--gpus", ["0", "-1", "abc"]),
                ("--peak-flops", POS_FLOAT),
                ("--mfu", ["0", "-1", "2", "abc", "nan", "measured"]),
                ("--gpu-hour-usd", ["-1", "abc", "nan"]),
                ("--n-boot", ["-1", "abc"]),
                ("--depth-preset", CHOICE),
                ("--laws", ["1,2,3", "0,0.5,1,0.5", "a,b,c,d"]),
                ("--ratio", POS_FLOAT),
                ("--convention", CHOICE),
                ("--budgets", FLOAT_LIST),
                ("--bpb-targets", FLOAT_LIST),
                ("--from-csv", [ws["core_nan.csv"], *bad_csvs]),
            ],
        ),  # fmt: skip
        "report": (
            ["report", *project, "--bootstrap", "0"],
            [
                ("--bootstrap", ["-1", "abc"]),
                ("--convention", CHOICE),
                ("--project", bad_projects),
                ("--out", [ws["good"], "/proc/x"]),
            ],
        ),  # fmt: skip
        "ablate": (
            ["ablate", "optimizer", "--project", str(r / "ablation"), "--quiet"],
            [
                ("--workers", POS_INT),
                ("--budgets", FLOAT_LIST),
                ("--window", POS_INT + ["2"]),
                ("--lr-steps", POS_INT),
                ("--bootstrap", ["-1", "abc"]),
            ],
        ),  # fmt: skip
        "demo": (
            ["demo", "--project", str(r / "demo"), "--quiet"],
            [
                ("--workers", POS_INT),
                ("--budgets", FLOAT_LIST),
                ("--heldout", POS_FLOAT + ["1e3"]),
                ("--window", POS_INT + ["2"]),
                ("--series-depths", DEPTHS),
                ("--core", POS_INT),
                ("--bootstrap", ["-1", "abc"]),
            ],
        ),  # fmt: skip
    }


@pytest.fixture
def no_real_work(monkeypatch):
    """Guards: if a wrong value slipped through, fail at once instead of building data."""

    def refuse(*a, **k):
        raise AssertionError("invalid input was accepted: the demo started building data")

    monkeypatch.setattr("miniseries.jobs.demo.prepare_data", refuse)


def run_cli(argv, capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    return code, capsys.readouterr().err


def assert_one_line_error(argv, code, err):
    lines = err.strip().splitlines()
    assert code == 2, f"{argv}: exit {code}, stderr {err[-800:]!r}"
    assert "Traceback" not in err, argv
    assert len(lines) == 1 and lines[0].startswith("miniseries"), f"{argv}: {err!r}"


def test_every_subcommand_has_a_fuzz_case(ws):
    assert set(fuzz_table(ws)) == set(COMMANDS), "add a fuzz case for each new subcommand"


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if c not in ("train", "lr-sweep", "demo", "ablate")]
)
def test_base_argv_is_valid_input(command, ws, capsys, no_real_work):
    """The base argvs are accepted (or fail only on the missing thing they point at), so a refusal
    in the fuzz test is caused by the wrong value, not by the base. (train, lr-sweep, demo and
    ablate would do real work on a valid argv: their wrong values are each invalid on their
    own.)"""
    argv, _ = fuzz_table(ws)[command]
    code, err = run_cli(argv, capsys)
    if command in ("data", "tokenizer", "sample", "core"):  # point at nothing: one clear line
        assert_one_line_error(argv, code, err)
    else:
        assert code == 0, f"{argv}: {err}"


@pytest.mark.parametrize("command", COMMANDS)
def test_fuzzed_invalid_values_exit_2_with_one_line(command, ws, capsys, no_real_work):
    base, flags = fuzz_table(ws)[command]
    wrong = st.sampled_from(flags).flatmap(
        lambda f: st.tuples(st.just(f[0]), st.sampled_from(f[1]))
    )

    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(wrong, min_size=1, max_size=3, unique_by=lambda fv: fv[0]))
    def check(mutations):
        argv = list(base)
        for flag, value in mutations:
            argv += [flag, value]
        code, err = run_cli(argv, capsys)
        assert_one_line_error(argv, code, err)

    check()


# -- the cases the issue names, with the message they must give ---------------------------------


@pytest.mark.parametrize(
    "argv, says",
    [
        (["plan", "--flops=-1e18"], "positive"),
        (["sweep", "--flops=-3e11", "--dry-run"], "positive"),
        (["sweep", "--flops", "3e11", "--depths", "6-1", "--dry-run"], "backwards; write 1-6"),
        (["plan", "--depth", "3", "--preset", "tpu"], "unknown preset 'tpu'"),
        (["extrapolate", "--core-law", "3.7,-0.03"], "must be positive"),
    ],
)
def test_named_bad_inputs(argv, says, capsys):
    code, err = run_cli(argv, capsys)
    assert_one_line_error(argv, code, err)
    assert says in err


@pytest.mark.parametrize(
    "name, says",
    [
        ("missing.csv", "column"),
        ("nonnumeric.csv", "abc"),
        ("nan.csv", "nan"),
        ("empty.csv", "no runs"),
    ],
)
def test_bad_csvs_for_fit(ws, name, says, capsys):
    code, err = run_cli(["fit", ws[name]], capsys)
    assert_one_line_error(name, code, err)
    assert ws[name] in err and says in err.lower()


@pytest.mark.parametrize("name, says", [("core_nan.csv", "core"), ("core_text.csv", "non-numeric")])
def test_bad_csvs_for_extrapolate(ws, name, says, capsys):
    code, err = run_cli(["extrapolate", "--from-csv", ws[name]], capsys)
    assert_one_line_error(name, code, err)
    assert says in err.lower()


def test_nan_is_refused_everywhere_a_float_is_taken():
    from miniseries.cli.common import finite_float, positive_float

    for parse in (finite_float, positive_float):
        for text in ("nan", "inf", "-inf", "NaN"):
            with pytest.raises(Exception, match="finite"):
                parse(text)
    assert math.isclose(finite_float("-0.5"), -0.5)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_explains_itself_with_help(command, capsys):
    """`miniseries COMMAND --help` exits 0 with a usage line and a description of the command."""
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: miniseries {command}")
    assert len(out.splitlines()) > 3
