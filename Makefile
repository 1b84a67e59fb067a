# Two commands a new user runs: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The venv is reinstalled whenever pyproject.toml changes (stamp keyed on its hash).
DEPS_HASH := $(shell sha256sum pyproject.toml | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
# Ray workers import torch; without bytecode every worker recompiles it (this machine sets
# PYTHONDONTWRITEBYTECODE=1), so bytecode is compiled at install time and allowed at run time.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: venv demo test unit test-slow test-cluster test-wheel test-readme lint typecheck clean bench reliability ui-check

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --progress-bar off -e '.[dev,postgres,onnx,tensorboard]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

demo: venv
	$(VENV)/bin/fracture-tune demo

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy names modules after folders; the repository root is the package fracture_tune, so it reads the code
# through a folder of that name (a link to the root), the way the installed package is laid out.
TYPECHECK_VIEW := .build/typecheck
typecheck: venv
	@mkdir -p $(TYPECHECK_VIEW) && ln -sfn ../.. $(TYPECHECK_VIEW)/fracture_tune
	$(VENV)/bin/mypy $(addprefix $(TYPECHECK_VIEW)/fracture_tune/,__init__.py __main__.py cli.py errors.py version.py data trainables classifier search cluster)

unit: venv
	$(VENV)/bin/pytest tests/unit -q

# Everything but the GPU tests and the README run, the slow fault-injection ones included: CI runs this on
# every landing.
test: venv lint typecheck
	$(VENV)/bin/pytest -m "not gpu and not readme" -q

test-slow: venv
	$(VENV)/bin/pytest -m "slow" -q

test-cluster: venv
	$(VENV)/bin/pytest -m "cluster" -q

test-wheel: venv
	$(VENV)/bin/pytest -m "wheel" -q

# The README's "Your own images" and "From Python" blocks as printed, on synthetic images (~6 min on 2 cores).
test-readme: venv
	$(VENV)/bin/pytest -m "readme" -q

reliability: venv
	$(PY) tools/reliability_table.py

# The MLflow UI in headless Chromium (apt-get install chromium): a 4-trial quickstart search's parent and
# trial runs must be listed. Another search: UI_CHECK_ARGS="--search NAME --tracking-uri URI"; the docs'
# picture: UI_CHECK_ARGS="--screenshot docs/images/mlflow-runs.png".
ui-check: venv
	$(PY) tools/mlflow_ui_check.py $(UI_CHECK_ARGS)

# Each prints a side-by-side table; BENCHMARKS.md records the figures and the machine.
FRACATLAS_DIR ?= ../shared/data/fracatlas
bench: venv
	$(PY) benchmarks/prepare.py --data $(FRACATLAS_DIR) --runs 3
	$(PY) benchmarks/throughput.py --data $(FRACATLAS_DIR) --device auto
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/scaling.py
	$(PY) benchmarks/scale.py --trials 100
	$(PY) benchmarks/search_efficiency.py --quick

clean:
	rm -rf .fracture-tune mlflow.db mlartifacts .pytest_cache .mypy_cache .ruff_cache .build
