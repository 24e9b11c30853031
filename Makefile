# Two entry points: `make run` (conformance report) and `make test` (full suite).
# Both create .venv and install onespec with all three frameworks first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.onespec-installed

.PHONY: install run numerics test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m onespec conformance

# same weights everywhere vs the numpy reference, and one SGD step across frameworks
numerics: $(STAMP)
	$(PY) -m onespec conformance --numerics

test: $(STAMP)
	ONESPEC_REQUIRE_FRAMEWORKS=1 $(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
