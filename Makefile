# Mailhost: `make up` runs it, `make test` proves it, `make down` stops what `make up` started.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SIZE ?= full

.PHONY: help install up down test lint bench

help:
	@echo "make up     install what is missing, start portal + worker + mail stack, print login"
	@echo "make down   stop everything 'make up' started"
	@echo "make test   install what is missing and run ruff and the whole test suite"
	@echo "make bench  benchmarks against a real stack (SIZE=small: < 3 min; SIZE=full)"

$(VENV)/.installed: pyproject.toml
	@scripts/install-system.sh
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q '.[test]'
	@touch $@

install: $(VENV)/.installed
	@scripts/install-system.sh

up: install
	@scripts/up.sh

down:
	@scripts/down.sh

test: install
	@scripts/test.sh

lint: install
	@$(VENV)/bin/ruff check .

bench: install
	@scripts/bench.sh $(SIZE)
