# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-unit test-integration test-browser fuzz bench soak lint docs clean system-deps install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall when the package metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,docs]'
	@touch $@

install: $(STAMP)

# Debian packages the tests need, installed when missing: the FreeTDS ODBC driver (the SQL Server path) and
# Chromium (tests/browser drive /usr/bin/chromium through Playwright; `playwright install` is never run).
system-deps:
	@missing=""; \
	dpkg -s tdsodbc unixodbc >/dev/null 2>&1 || missing=" tdsodbc unixodbc"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (SQL Server ODBC driver, browser for the report tests)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
		|| echo "warning: could not install$$missing; the SQL Server live tests or the browser tests will be skipped"; \
	fi

# Runs the main job end to end on embedded defaults: reference dispatch pair,
# a 5,000-command trace, replay, compare, the quirk catalogue.
demo: $(STAMP)
	$(BIN)/shadow demo run --commands 5000 --workdir .demo

# Two processes (pytest-xdist): most of the suite's time is fault tests waiting, so it takes ~4.5 min, not ~8.
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist worksteal

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

test-integration: $(STAMP) system-deps
	$(BIN)/python -m pytest -q tests/integration

test-browser: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/browser

# The proxy fuzzed longer than `make test` fuzzes it (3,000 examples there): 50,000 raw HTTP/1.1 exchanges.
fuzz: $(STAMP)
	SHADOW_FUZZ_EXAMPLES=50000 $(BIN)/python -m pytest -q -p no:cacheprovider --timeout 3600 tests/fuzz

# Benchmarks, not tests: they print figures side by side with the named peer, measured in one run.
bench: $(STAMP)
	$(BIN)/python -m tests.bench.bench_comparator 50000
	$(BIN)/python -m tests.bench.bench_catalogue 1000000
	$(BIN)/python -m tests.bench.bench_proxy 3
	$(BIN)/python -m tests.bench.bench_kafka 20000
	$(BIN)/python -m tests.bench.bench_reconcile 10000000 2000000
	$(BIN)/python -m tests.bench.bench_report --pairs 10000000 --quirks 10000
	$(BIN)/python -m tests.bench.bench_ui --pairs 10000000 --quirks 10000
	$(BIN)/python -m tests.bench.bench_cutover 20 5

# A soak, not part of bench (30 minutes): 500 commands/s through the proxy, a comparator worker and the store
# running; prints RSS, descriptors, queues and caller p99 every minute, the verdict, and docs/images/soak.png.
soak: $(STAMP)
	$(BIN)/python -m tests.bench.soak --minutes 30 --rate 500

lint: $(STAMP)
	$(BIN)/ruff check shadow adapters rules reports cutover tests

# The docs site (MkDocs, Material theme) into build/site/; the CLI, config, rule-file and canary-plan references
# are generated from the code on every build. `make test` builds it with --strict (tests/unit/test_docs.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "open build/site/index.html"

clean:
	rm -rf $(VENV) .demo build *.egg-info
