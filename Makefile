# Operator entry points. `make up` runs the whole stack locally; `make test` runs every suite.
# The work is done by scripts/*.sh; this file only names it. `make help` lists the verbs.

SHELL := /bin/bash
BUILD ?= build
STACK := BUILD_DIR=$(BUILD) scripts/stack.sh

.DEFAULT_GOAL := help
.PHONY: help deps build up down restart status health logs logs-equity logs-fi logs-portfolio \
	logs-gateway test test-asan db-migrate shell-equity shell-fi shell-portfolio backup clean \
	bench lint format demo-data restore scale-equity scale-fi scale-portfolio fuzz

# `make scale-equity 3`: the word after a scale-* goal is its N (so make must not build it);
# `make scale-equity N=3` works too.
SCALE_GOALS := scale-equity scale-fi scale-portfolio
ifneq ($(filter $(SCALE_GOALS),$(MAKECMDGOALS)),)
  SCALE_ARGS := $(filter-out $(SCALE_GOALS),$(MAKECMDGOALS))
  N ?= $(firstword $(SCALE_ARGS))
  ifneq ($(SCALE_ARGS),)
    $(eval $(SCALE_ARGS):;@:)
  endif
endif

help: ## this list
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | \
	  awk -F':.*## ' '{ printf "  make %-16s %s\n", $$1, $$2 }'

deps: ## install missing Debian packages and the npm test tools
	@scripts/install-deps.sh

build: ## configure (once) and build into build/
	@scripts/build.sh $(BUILD)

up: ## install, build, start PostgreSQL, Redis, services, workers, gateway; load demo data
	@scripts/install-deps.sh --debs
	@scripts/build.sh $(BUILD)
	@$(STACK) up

down: ## stop everything `make up` started (data stays in .run/)
	@$(STACK) down

restart: build ## down, then up
	@$(STACK) restart

status: ## each component: port, up/down, pid
	@$(STACK) status

health: ## GET /health on the gateway
	@$(STACK) health

logs: ## follow every log in .run/logs
	@$(STACK) logs

logs-equity: ## follow the equity service and its worker
	@$(STACK) logs equity

logs-fi: ## follow the fixed income service and its worker
	@$(STACK) logs fi

logs-portfolio: ## follow the portfolio service and its worker
	@$(STACK) logs portfolio

logs-gateway: ## follow the REST gateway
	@$(STACK) logs gateway

test: ## install, build, run every suite (+ sanitizers when CI=true or ASAN=1), lint
	@scripts/test.sh

test-asan: ## unit + integration suites built with -Db_sanitize=address,undefined (build-asan/)
	@scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false
	@rm -f build-asan/meson-logs/testlog.json
	@meson test -C build-asan --print-errorlogs --suite unit --suite integration \
	  --timeout-multiplier 3; rc=$$?; \
	  if [ -f build-asan/meson-logs/testlog.json ]; then \
	    /usr/bin/python3 scripts/test-summary.py build-asan/meson-logs/testlog.json || rc=1; fi; \
	  exit $$rc

db-migrate: build ## apply migrations: each service binary with --migrate-only
	@$(STACK) migrate

shell-equity: ## psql on the equity database
	@$(STACK) psql equity

shell-fi: ## psql on the fixed income database
	@$(STACK) psql fi

shell-portfolio: ## psql on the portfolio database
	@$(STACK) psql portfolio

backup: ## pg_dump -Fc of each database into backups/<db>-<UTC timestamp>.dump
	@scripts/backup.sh

restore: ## restore a database in one transaction: make restore DB=equity [FILE=backups/...dump]
	@scripts/restore.sh $(DB) $(FILE)

scale-equity: ## run N replicas of equity + its worker, gateway balancing: make scale-equity 3
	@$(STACK) scale equity $(N)

scale-fi: ## run N replicas of fixed income + its worker: make scale-fi 2
	@$(STACK) scale fi $(N)

scale-portfolio: ## run N replicas of portfolio + its worker: make scale-portfolio 2
	@$(STACK) scale portfolio $(N)

demo-data: ## (re)load the demo data through the gateway
	@scripts/demo-data.sh

bench: ## build, then h2load fsr vs a C++ gRPC server; tables in build/bench-results.md
	@scripts/bench.sh $(BUILD)

FUZZ_SECONDS ?= 60
fuzz: ## libFuzzer (clang, build-fuzz/): each target FUZZ_SECONDS (60) over test/fuzz/corpus/
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh run

# `make soak SOAK_SECONDS=180`: the long form of the load test against its own throwaway
# PostgreSQL/Redis and processes; RSS and open fds of every process sampled every 10 s.
SOAK_SECONDS ?= 600
soak: build ## 10-min wrk soak through the gateway (SOAK_SECONDS): 0 errors, p99, flat RSS/fds
	@test/integration/with_deps.sh --pg --redis -- /usr/bin/python3 test/load/load.py \
	  --gateway $(BUILD)/rest_gateway/fsr-gateway --equity $(BUILD)/svc_equity/fsr-equity \
	  --fi $(BUILD)/svc_fixed_income/fsr-fixed-income \
	  --portfolio $(BUILD)/svc_portfolio/fsr-portfolio \
	  --duration $(SOAK_SECONDS) --soak --json-out $(BUILD)/soak-results.json; rc=$$?; \
	  echo "soak: figures in $(BUILD)/soak-results.json"; exit $$rc

lint: ## clang-format check, cppcheck, shellcheck
	@scripts/lint.sh

format: ## clang-format -i every C source, then lint
	@scripts/lint.sh --fix

clean: ## remove build/ and build-asan/ (the stack's data in .run/ stays; make down first)
	rm -rf build build-asan
