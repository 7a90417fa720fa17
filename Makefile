# Two commands for a fresh machine: `make demo` and `make test` (each sets everything up).
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
export DAGSTER_HOME := $(CURDIR)/var/dagster
export LAION_ASSETS_VAR := $(CURDIR)/var
# Offline by default here (the profile is defined once, in laion_assets/settings.py): images
# come from the drop's own WARC captures, CLIP runs with seeded random weights (no download)
# and keeps the top 30 % by similarity. Production: see infra/production.env.
export LAION_ASSETS_PROFILE ?= offline
# The UI's port (`make ui PORT=3001`).
PORT ?= 3000

.PHONY: setup system-packages demo test lint ui ui-stop bench clean

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

# `dg check defs` loads the Definitions as Dagster does (the [tool.dg] project in
# pyproject.toml) before the tests run.
test: setup system-packages
	$(VENV)/bin/ruff check .
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/dg check defs
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

# `dg dev` (webserver and daemon), started from inside DAGSTER_HOME with the workspace file, so
# dagster does not warn about the repo's dagster.yaml. It ignores SIGTERM sent to the parent
# alone, so it runs in its own process group (its id in var/ui.pid): Ctrl-C here, or
# `make ui-stop` from another shell (also for `make ui &`), stops the whole group.
UI_PID := $(LAION_ASSETS_VAR)/ui.pid
ui: setup
	@cd $(DAGSTER_HOME) && { setsid $(CURDIR)/$(VENV)/bin/dg dev -w $(CURDIR)/workspace.yaml \
	  -h 127.0.0.1 -p $(PORT) & pid=$$!; echo $$pid > $(UI_PID); \
	  trap 'kill -TERM -- -$$pid 2>/dev/null' INT TERM; wait $$pid; rm -f $(UI_PID); }

ui-stop:
	@test -f $(UI_PID) || { echo "$(UI_PID) not found: no \`make ui\` running here"; exit 1; }
	@pid=$$(cat $(UI_PID)); kill -TERM -- -$$pid 2>/dev/null || true; \
	for i in $$(seq 50); do kill -0 -- -$$pid 2>/dev/null || break; sleep 0.2; done; \
	if kill -0 -- -$$pid 2>/dev/null; then kill -KILL -- -$$pid; fi; \
	rm -f $(UI_PID); echo "stopped the UI (process group $$pid)"

bench: setup
	$(VENV)/bin/python benchmarks/bench_extract.py

clean:
	rm -rf var .bench
