# The two commands a newcomer types: `make run` and `make test`.
.DEFAULT_GOAL := help
STACK := scripts/stack.sh
IN_STACK := $(STACK) exec

.PHONY: help setup run test test-full test-tsl lint typecheck pytest stop status migrate

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## Install what is missing and start PostgreSQL and Redis
	@$(STACK) up

run:  ## Set up (runtime packages only), migrate, create the demo project, serve web + worker + beat
	@STACK_DEV=0 $(STACK) up
	@$(IN_STACK) python scripts/run.py

test: setup  ## Set up and run the whole suite: ruff, mypy, pytest
	@$(IN_STACK) scripts/check.sh

test-full: setup  ## The long fault and fuzz variants (marked slow; make test runs the fast ones)
	@$(IN_STACK) pytest -m slow tests/reliability

test-tsl: setup  ## Rollup tests against a Timescale License server: make test-tsl TSL_DATABASE_URL=postgres://…
	@test -n "$(TSL_DATABASE_URL)" || { echo "set TSL_DATABASE_URL=postgres://user:password@host:port/db"; exit 2; }
	@$(IN_STACK) env DATABASE_URL="$(TSL_DATABASE_URL)" pytest --create-db -m "rollups" tests/analytics

lint:  ## ruff only
	@$(IN_STACK) ruff check . && $(IN_STACK) ruff format --check .

migrate: setup  ## Apply migrations to the local database
	@$(IN_STACK) python manage.py migrate

status:  ## State of the local PostgreSQL and Redis
	@$(STACK) status

stop:  ## Stop the local PostgreSQL and Redis
	@$(STACK) stop
