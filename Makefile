# fedprice — the front door. Every target creates the environment if it is missing.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_UPDATE_CHECK := 1

.PHONY: env demo demo-fast test lint evaluate evaluate-tafeng privacy-report serve bench federation-demo clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11)"; exit 1; }
	@echo ">> creating the environment in $(VENV) (torch 2.13.0 CPU, flwr 1.42, opacus 1.6, fastapi; about a minute)"
	@test -d $(VENV) || $(PY) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q torch==2.13.0
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)
	@echo ">> environment ready: $(VENV)"

demo: env  ## the main job on the real Ta Feng data (~3-4 min after installation)
	$(BIN)/fedprice demo

demo-fast: env  ## a small slice of the same job (~1 min)
	$(BIN)/fedprice demo --fast

test: env  ## lint + the whole test suite
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: env
	$(BIN)/ruff check .
	$(BIN)/mypy demand privacy

evaluate: env  ## pricing against ground truth on the synthetic market
	$(BIN)/fedprice sim evaluate

evaluate-tafeng: env  ## semi-synthetic pricing evaluation on Ta Feng (~3-4 min)
	$(BIN)/fedprice sim evaluate-tafeng

privacy-report: env  ## the demo shops' privacy report (after `make demo`)
	$(BIN)/fedprice shop privacy-report --all --shops-dir var/demo/shops

serve: env  ## the pricing API on the newest model of the demo's registry (run `make demo` first)
	FEDPRICE_API_REGISTRY_DIR=var/demo/registry FEDPRICE_API_PUBLIC_KEY=var/demo/central/keys/signing.pub \
	FEDPRICE_API_FEATURE_STORE=var/demo/feature_store.sqlite FEDPRICE_API_SHOPS_DIR=var/demo/shops \
	FEDPRICE_API_AUDIT_DB=var/demo/audit.sqlite FEDPRICE_API_API_KEYS_FILE=var/demo/api_keys.json \
	$(BIN)/fedprice api serve --host 127.0.0.1 --port 8080

bench: env  ## API throughput/latency ratios vs a bare endpoint, optimiser speed
	@command -v wrk >/dev/null || { echo ">> installing wrk (Debian)"; apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python benchmarks/bench_optimiser.py
	$(BIN)/python benchmarks/bench_api.py

federation-demo: env  ## SuperLink + 3 SuperNodes with TLS and node auth on this machine, then a quote
	$(BIN)/python scripts/federation_demo.py

clean:
	rm -rf var/demo var/demo-fast
