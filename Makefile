# asyncstatus — the two commands are `make run` and `make test`.
CARGO   ?= cargo
VENV    := target/pyvenv
PYTHON  := $(VENV)/bin/python
# The Traffic Ops Python client the compatibility test drives.
TO_CLIENT := apache-trafficcontrol==3.1.0
# Compose v2 (`docker compose`) when the Docker CLI has it, else the standalone docker-compose.
COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.PHONY: run test lint fmt openapi build release install bench bench-scale soak fuzz check-deploy up down clean help

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## Build and start the service on SQLite (prints the URL and the first-run admin password)
	$(CARGO) run -p asyncstatus-api -- serve

test: $(VENV)/.installed ## Every test, on SQLite and on PostgreSQL (a throwaway cluster unless ASYNCSTATUS_TEST_DATABASE_URL is set)
	scripts/need-debian-package nginx nginx
	ASYNCSTATUS_TEST_PYTHON=$(abspath $(PYTHON)) scripts/with-postgres scripts/run-tests

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

openapi: ## Write docs/openapi.json from the code (the document served at /api/openapi.json; a test fails when they differ)
	$(CARGO) run --quiet -p asyncstatus-api -- openapi > docs/openapi.json.tmp
	mv docs/openapi.json.tmp docs/openapi.json

build: ## Debug build
	$(CARGO) build --workspace

release: ## Release build of the binary (target/release/asyncstatus-api)
	$(CARGO) build --release -p asyncstatus-api

install: ## Install the asyncstatus client command (cargo install --path crates/client, into ~/.cargo/bin)
	$(CARGO) install --locked --path crates/client

bench: ## Release build, then load on SQLite and a throwaway PostgreSQL vs their ceilings (~4 min; table in target/bench/last.txt)
	scripts/bench

bench-scale: ## Release build, then 10 M jobs on a throwaway PostgreSQL and 1 M on SQLite: list/metrics latency, deep pages, throughput vs an empty table, counters' cost, sweeps (~20 min; SCALE_JOBS; table in target/bench/scale.txt)
	scripts/bench-scale

soak: ## Release build, then 10 minutes of mixed load on PostgreSQL (SOAK_BACKEND=sqlite, SOAK_DURATION=s): RSS, CPU, p99, errors every 30 s (table in target/soak/last.txt)
	scripts/soak

bench-waiters: ## 2000 concurrent long-poll waiters: RSS and CPU while they wait, wake-up latency (PostgreSQL; BENCH_BACKEND=sqlite)
	scripts/bench-waiters

fuzz: ## Schemathesis against the debug build on a temporary SQLite database, per docs/openapi.json (~2 min; reports in target/fuzz)
	scripts/fuzz

check-deploy: ## Validate docker-compose.yml, docker-compose.prod.yml (docker-compose config, Compose schema) and the Dockerfile against the code
	scripts/check-deploy

up: ## Local development in Docker: PostgreSQL and the api on 127.0.0.1:8080, nothing to set (needs a Docker engine)
	$(COMPOSE) up --build -d

down: ## Stop what `make up` started (the database volume is kept)
	$(COMPOSE) down

clean: ## Remove build output and the local SQLite data
	$(CARGO) clean
	rm -rf data

$(VENV)/.installed:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(TO_CLIENT)
	touch $@
