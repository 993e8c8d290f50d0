# The two commands of the README contract: `make test` and `make demo`. Both set up what they
# need (a .venv with the project and its extras, the Debian test peers when run as root) and are
# idempotent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pygasi-installed

.PHONY: test lint typecheck pytest pytest-interpreted demo deps peers compile bench clean

test: deps lint typecheck pytest pytest-interpreted

deps: $(STAMP) peers compile

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	PYGASI_COMPILE=0 $(PY) -m pip install -q --disable-pip-version-check -e '.[test,dev]'
	touch $(STAMP)

# media's per-packet modules compiled in place by mypyc (setup.py, media/__init__.py), again
# whenever media/ changes: the old modules go first, so a failed build leaves pure Python. The
# build copies its products with their old times when their C did not change: touched, so that
# media/__init__.py does not take them for older than their source.
NATIVE := media/.compiled
$(NATIVE): $(STAMP) setup.py $(shell find media -name '*.py')
	find media -name '*.so' -delete
	$(PY) setup.py -q build_ext --inplace
	find media -name '*.so' -exec touch {} +
	touch $(NATIVE)

compile: $(NATIVE)

peers:
	scripts/install-test-deps

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# On CI, and wherever a C compiler is, the compiled modules must be in use
# (tests/media/test_compiled.py): a build that failed does not pass unseen.
pytest: $(STAMP) compile
	PYGASI_EXPECT_COMPILED=$$( { [ -n "$${CI:-}" ] || command -v cc >/dev/null; } && echo 1) \
		$(VENV)/bin/pytest -q

# The pure-Python media modules, what runs where nothing was compiled, pass the same tests.
pytest-interpreted: $(STAMP)
	PYGASI_INTERPRETED=1 $(VENV)/bin/pytest -q tests/media

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
	find media -name '*.so' -delete
	rm -f $(NATIVE)
