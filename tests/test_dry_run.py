"""Dry runs need nothing but the plan: no data, no tokenizer, no store; time and cost by hand."""

import re
import subprocess
import sys

import pytest

from miniseries.cli import main
from miniseries.errors import UserError
from miniseries.store.db import open_store
from miniseries.study.plan_cost import GpuRate, gpu_costs, makespan
from miniseries.study.runspec import RunSpec

H100 = 989e12  # dense bf16 FLOP/s (NVIDIA's datasheet), independent of miniseries.train.mfu's table


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A machine with nothing built: no corpus, no tokenizer, no token shards."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MINISERIES_CACHE", str(cache))
    return cache


def test_gpu_sweep_dry_run_needs_no_data_and_prices_every_run(empty_cache, tmp_path, capsys):
    project = tmp_path / "p"
    argv = ["sweep", "--preset", "gpu", "--flops", "1e18,3e18", "--depths", "8-10",
            "--workers", "8", "--project", str(project), "--dry-run", "--gpus", "8",
            "--gpu-peak", "H100", "--mfu", "0.4", "--gpu-hour-usd", "2.5"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert not project.exists() and not any(empty_cache.rglob("*"))  # nothing made or built
    # by hand: a run's GPU-hours = its FLOPs / (989e12 x 0.4) / 3600 (whole steps: FLOPs <= C)
    hours_1e18 = 1e18 / (H100 * 0.4) / 3600  # 0.702
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    rows = [r for r in rows if len(r) == 11]  # run, depth, budget, ..., time, GPU-h, $
    assert len(rows) == 6
    for r in rows:
        budget, gpu_h, usd = float(r[2]), float(r[9]), float(r[10].lstrip("$"))
        assert gpu_h == pytest.approx(budget / 1e18 * hours_1e18, rel=2e-3)
        assert usd == pytest.approx(2.5 * gpu_h, rel=1e-2)
    total = re.search(r"total: 6 runs, .* wall ([\d.]+) h, ([\d.]+) GPU-hours, \$([\d.]+)", out)
    assert total, out
    gpu_hours = 12 * hours_1e18  # 3 x 1e18 + 3 x 3e18 FLOPs
    assert float(total.group(2)) == pytest.approx(gpu_hours, rel=2e-3)
    assert float(total.group(3)) == pytest.approx(2.5 * gpu_hours, rel=1e-2)
    # 6 runs on 8 GPUs, one each: the longest run (a 3e18 one) is the wall time
    assert float(total.group(1)) == pytest.approx(3 * hours_1e18, rel=2e-3)
    assert "│   - │" in out  # no run ids: they name the data, which does not exist yet


def test_gpu_dry_run_without_prices_says_what_to_give(empty_cache, tmp_path, capsys):
    argv = ["series", "--preset", "gpu", "--depths", "8-9", "--ratio", "8",
            "--project", str(tmp_path / "p"), "--dry-run"]  # fmt: skip
    assert main(argv) == 0
    assert "give --gpus N --gpu-peak H100 --mfu 0.4" in capsys.readouterr().out
    assert main([*argv, "--gpus", "8"]) == 2
    assert "--gpus needs --gpu-peak" in capsys.readouterr().err
    assert main([*argv, "--gpus", "8", "--gpu-peak", "Z80", "--mfu", "0.4"]) == 2
    assert "unknown GPU 'Z80'" in capsys.readouterr().err


def test_mfu_measured_is_the_median_of_the_projects_runs(empty_cache, tmp_path, capsys):
    project = tmp_path / "p"
    with open_store(project) as store:
        for i, mfu in enumerate((0.30, 0.50, 0.45)):
            store.ensure_run(f"{i:012d}", kind="single")
            store.update_run(f"{i:012d}", status="done", mfu=mfu)
    argv = ["run", "--preset", "gpu", "--flops", "1e18", "--project", str(project),
            "--dry-run", "--gpus", "1", "--gpu-peak", "989e12", "--mfu", "measured"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "MFU 45%" in out
    assert f"{1e18 / (H100 * 0.45) / 3600:.3g}" in out  # the run's GPU-hours at the median


def test_cpu_dry_run_times_each_depth_on_this_machine(empty_cache, tmp_path, capsys):
    argv = ["series", "--preset", "cpu", "--depths", "1-2", "--ratio", "8", "--workers", "2",
            "--project", str(tmp_path / "p"), "--dry-run"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"total: 2 runs, .* wall [\d.]+ s .*this CPU, 2 worker", out), out
    assert not (tmp_path / "p").exists()


def test_makespan_packs_longest_first():
    assert makespan([5, 4, 3, 3, 3], 2) == 10  # 5 | 4; the 3s go on 4 (7), 5 (8), 7 (10)
    assert makespan([10, 1, 1, 1], 2) == 10
    assert makespan([1.0] * 8, 8) == 1.0
    assert makespan([2, 2, 2], 1) == 6


def test_gpu_costs_split_a_run_over_its_gpus():
    spec = RunSpec(depth=12, steps=100, data="d", tokenizer="t", preset="gpu")
    [one] = gpu_costs([spec], GpuRate(8, H100, 0.5))
    [four] = gpu_costs([spec], GpuRate(8, H100, 0.5), nproc=4)
    assert one.gpu_hours == four.gpu_hours and four.seconds == pytest.approx(one.seconds / 4)
    assert one.gpu_hours == pytest.approx(spec.plan().flops / (H100 * 0.5) / 3600)
    with pytest.raises(UserError, match="0 < --mfu <= 1"):
        GpuRate(8, H100, 1.5)


def test_gpu_dry_run_needs_no_torch(empty_cache, tmp_path):
    """A laptop planning rented GPUs needs neither data nor PyTorch to see the bill."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from miniseries.cli import main\n"
        f"sys.exit(main(['sweep', '--preset', 'gpu', '--flops', '1e18', '--depths', '8-9',"
        f" '--project', {str(tmp_path / 'p')!r}, '--dry-run', '--gpus', '8',"
        " '--gpu-peak', 'H100', '--mfu', '0.4']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "total: 2 runs, 2e+18 FLOPs" in out.stdout


def test_compile_where_it_pays_rule():
    """compile_depths by hand: step time from the plan alone (STEP_S + FLOPs per step /
    PEAK_FLOPS), saved = steps x step x (1 - COMPILED_STEP), against one cold compile plus a warm
    load per further run of the shape."""
    from miniseries.accounting import flops_per_token
    from miniseries.config import CPU
    from miniseries.study import plan_cost as cost
    from miniseries.study.runspec import PEAK_FLOPS, STEP_S, RunSpec

    def spec(depth, steps):
        return RunSpec(depth=depth, steps=steps, data=".", tokenizer=".")

    def saved(depth, steps):
        fpt = flops_per_token(CPU.model_config(depth))
        return steps * (STEP_S + fpt * CPU.batch_tokens / PEAK_FLOPS) * (1 - cost.COMPILED_STEP)

    assert saved(1, 100) < cost.COMPILE_COLD_S and saved(4, 5000) > cost.COMPILE_COLD_S
    assert cost.compile_depths([spec(1, 100), spec(4, 5000)]) == {4}
    # two runs of one shape: one cold compile, one warm load
    n = 1
    while 2 * saved(2, n) <= cost.COMPILE_COLD_S + cost.COMPILE_WARM_S:
        n += 1
    assert 2 not in cost.compile_depths([spec(2, n - 1), spec(2, n - 1)])
    assert 2 in cost.compile_depths([spec(2, n), spec(2, n)])
