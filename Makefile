# seedlab: two commands on a fresh machine.
#   make app    set up (virtual environment in .venv) and start the app on the default data
#   make test   set up and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: setup app test browser-deps bench lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

app: setup
	$(BIN)/streamlit run app.py --server.address $(HOST) --server.port $(PORT)

browser-deps:
	bash scripts/install_browser.sh

test: setup browser-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/python -m benchmarks

lint: setup
	$(BIN)/ruff check seedlab pages app.py tests benchmarks
