# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-unit test-integration bench lint clean system-deps install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall when the package metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP)

# Debian packages the SQL Server path needs (FreeTDS ODBC driver); installed when missing.
system-deps:
	@if ! dpkg -s tdsodbc unixodbc >/dev/null 2>&1; then \
		echo "installing tdsodbc unixodbc (FreeTDS ODBC driver for SQL Server)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tdsodbc unixodbc >/dev/null) \
		|| echo "warning: could not install tdsodbc/unixodbc; SQL Server live tests will be skipped"; \
	fi

# Runs the main job end to end on embedded defaults: reference dispatch pair,
# a 5,000-command trace, replay, compare, the quirk catalogue.
demo: $(STAMP)
	$(BIN)/shadow demo run --commands 5000 --workdir .demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

test-integration: $(STAMP) system-deps
	$(BIN)/python -m pytest -q tests/integration

# Benchmarks, not tests: they print figures side by side with the named peer, measured in one run.
bench: $(STAMP)
	$(BIN)/python -m tests.bench.bench_comparator 50000
	$(BIN)/python -m tests.bench.bench_catalogue 1000000
	$(BIN)/python -m tests.bench.bench_proxy 3
	$(BIN)/python -m tests.bench.bench_kafka 20000
	$(BIN)/python -m tests.bench.bench_reconcile 10000000 2000000

lint: $(STAMP)
	$(BIN)/ruff check shadow adapters rules reports cutover tests

clean:
	rm -rf $(VENV) .demo build *.egg-info
