# The two commands of the README: `make run` and `make test`. Both create the environment if needed.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean system-packages ui ui-check

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade uv
	$(BIN)/uv pip install --python $(BIN)/python --constraint constraints.txt --editable ".[test]"
	# Every Airflow component and task process imports Airflow: compile it once, not in each of them.
	$(BIN)/python -m compileall -q -j0 $(VENV)/lib > /dev/null || true
	touch $(STAMP)

run: $(STAMP)
	VENV=$(abspath $(VENV)) scripts/run-airflow.sh

test: $(STAMP) system-packages
	$(BIN)/python -m pytest

# Debian programs some tests drive: chromium (the console in a browser), redis-server (the Celery broker of the
# scale-out tests), docker-compose (docker-compose.yaml is valid); installed here when missing and run as root,
# else their tests are skipped.
SYSTEM_PACKAGES := chromium docker-compose redis-server
system-packages:
	@missing="$$(for p in $(SYSTEM_PACKAGES); do command -v $$p > /dev/null || echo $$p; done)"; \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing > /dev/null) \
		|| echo "not installed: $$missing; the tests that drive them will be skipped (apt-get install $$missing)"; }

# The console's bundle, shipped in the package, built from ui/ (needs Node 20+ and npm; users need neither).
ui:
	cd ui && npm ci --no-audit --no-fund && npm run build

# Fails when the shipped bundle is not what ui/ builds: rebuild it with `make ui` and commit it.
ui-check:
	cd ui && npm ci --no-audit --no-fund && npx tsc --noEmit && node build.mjs --outfile ../.ui-check/console.js
	cmp airflow_integrity/plugin/static/console.js .ui-check/console.js \
		|| { echo "airflow_integrity/plugin/static/console.js does not match ui/: run make ui and commit"; exit 1; }
	rm -rf .ui-check

# The benchmarks of bench/RESULTS.md; each runs its baseline in the same run, interleaved with the subject.
bench: $(STAMP)
	$(BIN)/python bench/parse_time.py
	$(BIN)/python bench/validation_overhead.py
	$(BIN)/python bench/ledger_claim.py
	$(BIN)/python bench/audit_append.py
	$(BIN)/python bench/audit_verify.py
	$(BIN)/python bench/console_api.py
	$(BIN)/python bench/quick_approvals.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy airflow_integrity
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .airflow ui/node_modules .ui-check
