# The two entry points: `make run` (the main job against the embedded virtual sandbox) and
# `make test` (the whole suite). Both create .venv and install the project first.
# `make sim` serves the virtual sandbox on http://127.0.0.1:8765 until Ctrl-C; `make docs` builds the site.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test perf lint docs sim clean

# uv installs the same requirements (pyproject.toml's) in about a third of pip's time, which a clean
# CI machine pays on every run; pip does it where uv cannot be had or fails.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	( $(BIN)/python -m pip install --quiet --disable-pip-version-check uv \
	  && $(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]' ) \
	|| ( $(BIN)/python -m pip install --quiet --upgrade pip && $(BIN)/python -m pip install --quiet -e '.[dev]' )
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/locker-harness run

# Four workers on two cores: most of the suite waits on child processes, sockets and timers, so two
# workers left a core idle half the time; work stealing keeps the long tests from ending the run alone.
# Bytecode is cached whatever the caller's environment says: the suite starts hundreds of Python
# children, and each would compile the project from source again.
test: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n 4 --dist worksteal

# The documentation site into site/; --strict turns every broken link or anchor into an error.
# NO_MKDOCS_2_WARNING quiets Material's banner about its end of life (see docs/guides/development.md).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Timing budgets of the harness's own code (skipped in `make test`: a shared machine cannot promise them).
perf: $(STAMP)
	$(BIN)/python -m pytest -m perf

sim: $(STAMP)
	$(BIN)/locker-harness sim

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy harness

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
