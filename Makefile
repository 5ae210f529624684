# The two commands of the README: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8003

.PHONY: run test bench stress lint clean

$(VENV)/.installed-run: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

$(VENV)/.installed-bench: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

run: $(VENV)/.installed-run
	$(PY) -m rhetor_stream --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(PY) -m ruff check rhetor_stream tests bench
	$(PY) -m mypy --strict rhetor_stream

bench: $(VENV)/.installed-bench
	$(PY) -m bench $(BENCH_ARGS)

stress: $(VENV)/.installed-bench
	$(PY) -m bench.stress $(STRESS_ARGS)

clean:
	rm -rf $(VENV) .venv-interop .venv-interop.lock build dist *.egg-info .pytest_cache
