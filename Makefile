# The two commands of the README contract: `make test` and `make demo`. Both set up what they
# need (a .venv with the project and its extras, the Debian test peers when run as root) and are
# idempotent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pygasi-installed

.PHONY: test lint typecheck pytest demo deps peers bench clean

test: deps lint typecheck pytest

deps: $(STAMP) peers

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,dev]'
	touch $(STAMP)

peers:
	scripts/install-test-deps

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest -q

# A real SIP call (SIPp) through `pygasi run` into a local sandbox conference (Prosody and the
# Jicofo + videobridge emulator from tests/); prints what happened, exits 0 when it all worked.
demo: deps
	$(PY) scripts/demo.py

# Measurements, not tests (bench/README.md); uvloop (the `fast` extra) for `load.py --loop uvloop`.
bench: deps
	$(PY) -m pip install -q --disable-pip-version-check -e '.[fast]'
	$(PY) bench/sip_parse.py
	PYTHONMALLOC=malloc $(PY) bench/media.py  # the allocator pygasi run uses ([runtime])
	$(PY) bench/load.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build *.egg-info
