# Two commands for a fresh machine:  make run   and   make test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CURATE := $(VENV)/bin/curate
SAMPLE_DIR ?= data/sample

.PHONY: install system-deps run test test-fast bench lmplz clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Test-only system tools (headless Chromium for the report screenshot test, Debian's
# docker-compose client to validate docker-compose.yml, PostgreSQL for the job-store
# test on Postgres). Best effort: tests that need
# them say so and skip if they could not be installed.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (apt)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing; the tests that need them will skip"; \
	  else echo "warning: missing$$missing (not root); the tests that need them will skip"; fi; \
	fi

# Writes the bundled sample corpus (and the multilingual one pipelines/fineweb2.yaml reads),
# trains a small KenLM model on its prose in-tool and runs the quickstart pipeline on
# embedded Ray.
run: install
	$(CURATE) sample-data $(SAMPLE_DIR)
	$(CURATE) sample-data data/multilingual --multilingual
	$(CURATE) lm train "$(SAMPLE_DIR)/prose/*.parquet" --order 3 --out runs/models/prose.arpa
	$(CURATE) run pipelines/quickstart.yaml --executor ray

test: install system-deps
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q -p no:cacheprovider

test-fast: install
	$(VENV)/bin/pytest -q -m "not slow"

# Optional: build KenLM's lmplz from the kenlm source package (cmake + Debian boost).
lmplz:
	bash scripts/build_lmplz.sh

clean:
	rm -rf runs data/sample data/multilingual .pytest_cache
