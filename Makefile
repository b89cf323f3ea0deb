# `make run` and `make test` set everything up on a fresh machine: a virtual environment in .venv with
# the project and its dependencies (torch and torchvision resolved together from the registry), and the
# torch-free deploy distribution in ./deploy that the project depends on.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint benchmark clean

$(STAMP): pyproject.toml deploy/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip "setuptools>=68"
	$(BIN)/python -m pip install -e ./deploy -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/pipeline run pipelines/iris.toml

test: lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

benchmark: $(STAMP)
	$(BIN)/python benchmarks/iris_train.py

clean:
	rm -rf $(VENV) build *.egg-info
