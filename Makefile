# The two commands of the README: `make run` and `make test`. Both create the environment if needed.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade uv
	$(BIN)/uv pip install --python $(BIN)/python --constraint constraints.txt --editable ".[test]"
	# Every Airflow component and task process imports Airflow: compile it once, not in each of them.
	$(BIN)/python -m compileall -q -j0 $(VENV)/lib > /dev/null || true
	touch $(STAMP)

run: $(STAMP)
	VENV=$(abspath $(VENV)) scripts/run-airflow.sh

test: $(STAMP)
	$(BIN)/python -m pytest

# The benchmarks of bench/RESULTS.md; each runs its baseline in the same run, interleaved with the subject.
bench: $(STAMP)
	$(BIN)/python bench/parse_time.py
	$(BIN)/python bench/validation_overhead.py
	$(BIN)/python bench/ledger_claim.py
	$(BIN)/python bench/audit_append.py
	$(BIN)/python bench/audit_verify.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy airflow_integrity
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .airflow
