# Mailhost: `make up` runs it, `make test` proves it, `make down` stops what `make up` started.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SIZE ?= full

.PHONY: help install up down test test-docker test-freshbox lint bench lock

help:
	@echo "make up     install what is missing, start portal + worker + mail stack, print login"
	@echo "make down   stop everything 'make up' started"
	@echo "make test   install what is missing, run ruff, the whole test suite and make test-docker"
	@echo "make test-docker  build the image and prove docker/compose.yml on a private dockerd"
	@echo "make test-freshbox  make up, make down and a make test selection in a fresh Debian 12 container"
	@echo "make bench  benchmarks against a real stack (SIZE=small: < 3 min; SIZE=full)"
	@echo "make lock   add what pyproject.toml newly asks for to requirements.lock (UPGRADE=1: upgrade all)"

# Exactly the versions (and file hashes) in requirements.lock: every clone installs the same set.
$(VENV)/.installed: requirements.lock
	@scripts/install-system.sh
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --require-hashes -r requirements.lock
	@touch $@

install: $(VENV)/.installed
	@scripts/install-system.sh

up: install
	@scripts/up.sh

down:
	@scripts/down.sh

# The suite, then the docker deployment (a cold first run builds the Debian base: ~10 min; the
# base and the image layers are cached in /var/cache/mailhost for the next runs: ~2-5 min).
# PYTEST_ARGS: a selection instead of the whole suite (scripts/test.sh's arguments, e.g.
# PYTEST_ARGS='--sqlite -m embedded'); TEST_DOCKER=no skips make test-docker (a box without Docker).
PYTEST_ARGS ?=
TEST_DOCKER ?= yes
test: install
	@scripts/test.sh $(PYTEST_ARGS)
	@$(if $(filter no,$(TEST_DOCKER)),echo "make test: TEST_DOCKER=no: make test-docker skipped",$(MAKE) --no-print-directory test-docker)

test-docker: install
	@scripts/install-system.sh docker
	@docker/test.sh

# The README's commands in a fresh Debian 12 container (docker/freshbox.sh): ~6 min warm.
test-freshbox: install
	@scripts/install-system.sh docker
	@docker/freshbox.sh

lint: install
	@$(VENV)/bin/ruff check .

bench: install
	@scripts/bench.sh $(SIZE)

# pyproject.toml holds the ranges; this writes the newest versions within them, with hashes.
lock: install
	@$(PY) -m pip install -q pip-tools
	@$(VENV)/bin/pip-compile --quiet $(if $(UPGRADE),--upgrade) --generate-hashes --strip-extras --extra test \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml
