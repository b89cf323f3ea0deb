# `make run` and `make test` set everything up on a fresh machine: a virtual environment in .venv with
# the project and its dependencies (torch and torchvision resolved together from the registry), and the
# torch-free deploy distribution in ./deploy that the project depends on. `make test` also builds
# .venv-deploy, which holds the deploy distribution and its test tools alone (no torch, no
# pipeline-core), and runs the deploy suite (deploy/tests) there: torch-free is tested, not assumed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEPLOY_VENV := .venv-deploy
DEPLOY_BIN := $(DEPLOY_VENV)/bin
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed

.PHONY: install run test test-deploy lint benchmark clean

$(STAMP): pyproject.toml deploy/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip "setuptools>=68"
	$(BIN)/python -m pip install -e ./deploy -e '.[test]'
	touch $(STAMP)

# nothing but ./deploy with its CPU runtime and its test extra, made afresh each time deploy/pyproject.toml
# changes: a dependency that pulls torch (or onnxruntime-gpu) in fails the deploy suite
$(DEPLOY_STAMP): deploy/pyproject.toml
	rm -rf $(DEPLOY_VENV)
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_BIN)/python -m pip install --upgrade pip
	$(DEPLOY_BIN)/python -m pip install -e './deploy[cpu,test,mlflow]'
	touch $(DEPLOY_STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/pipeline run pipelines/iris.toml

# the deploy suite (about a minute) before the main one (twenty), so a broken deploy side fails fast
test: lint test-deploy
	$(BIN)/python -m pytest

test-deploy: $(DEPLOY_STAMP)
	PIPELINE_DEPLOY_RUNTIME=cpu $(DEPLOY_BIN)/python -m pytest deploy/tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

benchmark: $(STAMP)
	$(BIN)/python benchmarks/iris_train.py

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) build *.egg-info
