# mlbot: every target sets itself up on a fresh machine; a second run with nothing changed skips set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlbot-installed
DATA_DIR := .data
FASHION_DIR := /usr/share/datasets/fashion-mnist
VADER := $(DATA_DIR)/vaderSentiment-3.3.2.tar.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export MLBOT_DATA_DIR := $(abspath $(DATA_DIR))

.PHONY: setup data demo test test-fast bench lint clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# Real data for tests and benchmarks: Fashion-MNIST from Debian, VADER's reviews from PyPI.
data: $(FASHION_DIR) $(VADER)

$(FASHION_DIR):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist

$(VADER): | $(STAMP)
	$(PY) -m tools.realdata fetch

demo: $(STAMP)
	$(VENV)/bin/mlbot demo

test: $(STAMP) data
	$(PY) -m pytest -q

test-fast: $(STAMP) data
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP) data
	$(PY) -m bench.run

lint: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml

clean:
	rm -rf .mlbot $(DATA_DIR) .pytest_cache
