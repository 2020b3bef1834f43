# perfcheck: set up this machine, then run the scenario suite, the tests, the benchmarks or
# the linters. Every target that runs code sets up first; a second set-up changes nothing.
#
#   make perfcheck   scenario suite:   pytest --perfcheck --perfcheck-control scenarios/ $(PYTEST_ARGS)
#   make test        project tests:    pytest tests/ $(PYTEST_ARGS)
#   make bench       benchmarks:       python bench/run.py $(BENCH_ARGS)
#   make lint        ruff check, ruff format --check, mypy --strict
#   make fuzz        every file parser fed 10,000 generated inputs; 1 fio job in 25 run on a guarded disk
#   make setup       Debian packages, kernel headers, debugfs/tracefs, .venv (needs root once)
#   make clean       remove .venv and .stamps (never touches the machine's packages)
#
# Example: make test PYTEST_ARGS='-k doctor -x'

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PYTEST_ARGS ?=
BENCH_ARGS ?=

LINT_RUFF_PATHS := perfcheck tests

.PHONY: help setup perfcheck test bench lint fuzz clean

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))

setup:
	@scripts/setup-machine.sh

# pytest exits 5 when it collected nothing; that is a failure here, with a message saying so.
define run_pytest
	@echo "$(VENV)/bin/pytest $(1) $(PYTEST_ARGS)"
	@status=0; $(VENV)/bin/pytest $(1) $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
		echo "make: pytest collected no tests from '$(1)' (exit 5); check the path and PYTEST_ARGS" >&2; \
	fi; \
	exit $$status
endef

perfcheck: setup
	$(call run_pytest,--perfcheck --perfcheck-control scenarios/)

test: setup
	$(call run_pytest,tests/)

bench: setup
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

fuzz: setup
	PERFCHECK_FUZZ_EXAMPLES=10000 $(VENV)/bin/pytest -q tests/unit/test_fuzz_parsers.py $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check $(LINT_RUFF_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_RUFF_PATHS)
	$(VENV)/bin/mypy -p perfcheck

clean:
	rm -rf $(VENV) .stamps
