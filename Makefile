# Two commands for a fresh machine: `make demo` and `make test` (each sets everything up).
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
export DAGSTER_HOME := $(CURDIR)/var/dagster
export LAION_ASSETS_VAR := $(CURDIR)/var
# Offline by default here: images come from the drop's own WARC captures, and CLIP runs with
# seeded random weights (no download). Production names real weights: see infra/production.env.
export LAION_ASSETS_FETCH_SOURCES ?= replay
export LAION_ASSETS_CLIP_PRETRAINED ?= none
export LAION_ASSETS_CLIP_BATCH_SIZE ?= 32
# Untrained CLIP gives cosines near 0, so LAION's 0.28 threshold would drop every pair: the
# offline demo keeps the top 30 % by similarity instead (DataComp's rule).
export LAION_ASSETS_SIMILARITY ?= top_fraction

.PHONY: setup system-packages demo test lint ui bench clean

$(VENV)/.installed: pyproject.toml uv.lock
	$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

setup: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

demo: setup
	$(VENV)/bin/laion-assets demo

system-packages:
	scripts/system-packages.sh

test: setup system-packages
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

# Started from inside DAGSTER_HOME, so dagster does not warn about the repo's dagster.yaml.
ui: setup
	cd $(DAGSTER_HOME) && $(CURDIR)/$(VENV)/bin/dagster dev -w $(CURDIR)/workspace.yaml -h 127.0.0.1 -p 3000

bench: setup
	$(VENV)/bin/python benchmarks/bench_extract.py

clean:
	rm -rf var .bench
