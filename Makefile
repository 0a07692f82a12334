# convowatch build and test entry points (GNU make). `make test` works on a fresh Debian 12 clone:
# it installs system tools, creates .venv, fetches the pinned Kafka broker, lints, then runs pytest.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
.NOTPARALLEL:

VENV := .venv
STAMP := $(VENV)/.installed
KAFKA_VERSION := 3.9.1
KAFKA_JAR := .ci/kafka/lib/kafka_2.13-$(KAFKA_VERSION).jar
PYTEST_ARGS ?=

# First interpreter >= 3.11 that can create venvs (Debian needs python3-venv: `make system`).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 \
	&& $$p -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& { echo $$p; break; }; done)

.PHONY: venv kafka system lint test test-unit demo worker clean distclean

venv: $(STAMP)

$(VENV)/bin/python:
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.11 with venv support; run 'make system'" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Re-install only when pyproject.toml changed since the last successful install.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

kafka: $(KAFKA_JAR)

$(KAFKA_JAR): | .ci/kafka/pom.xml
	cd .ci/kafka && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib -DincludeScope=runtime
	@test -f $@ || { echo "error: mvn did not produce $@ (version mismatch with .ci/kafka/pom.xml?)" >&2; exit 1; }

system:
	.ci/install-system.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Unit tests and doctests on every core (pytest-xdist); the tests of real servers (a session's Kafka broker,
# Prometheus, Alertmanager, Chromium, worker processes) one at a time, as they share servers and measure
# timings. Exit status 5 (nothing selected, e.g. by PYTEST_ARGS="-k ...") is not a failure of either part.
UNIT := not kafka and not reliability and not prometheus and not browser

test: system venv kafka lint
	$(VENV)/bin/pytest -n auto -m "$(UNIT)" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(VENV)/bin/pytest -m "not ($(UNIT))" --durations=15 $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-unit: venv
	$(VENV)/bin/pytest -n auto -m "$(UNIT)" $(PYTEST_ARGS)

demo: venv
	$(VENV)/bin/convowatch demo

worker: venv
	$(VENV)/bin/convowatch worker

clean:
	rm -rf build convowatch-out .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Also drop the virtualenv and the downloaded Kafka jars.
distclean: clean
	rm -rf $(VENV) .ci/kafka/lib
