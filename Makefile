VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all lint format demo ablation recipe-ablation raise-the-line bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ''

lint: install
	$(VENV)/bin/ruff check miniseries tests benchmarks scripts
	$(VENV)/bin/ruff format --check miniseries tests benchmarks scripts

format: install
	$(VENV)/bin/ruff check --fix miniseries tests benchmarks scripts
	$(VENV)/bin/ruff format miniseries tests benchmarks scripts

demo: install
	$(PY) -m miniseries demo --project demo

ablation: install
	$(PY) -m miniseries ablate optimizer --project ablation

recipe-ablation: install  # docs/recipe-ablation.md; ~25-30 min on 2 cores, resumable
	$(PY) -m miniseries ablate recipe --project recipe --workers 2

raise-the-line: install  # docs/raise-the-line.md; `ablate options --dry-run` times it, resumable
	$(PY) -m miniseries ablate options --project raise-the-line --workers 2

bench: install
	$(PY) benchmarks/train_throughput.py --depths 1-7
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_fit.py
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_sweep.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
