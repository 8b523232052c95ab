# swarmd: one entry point for set-up, tests, the demo and benchmarks.
# Every target installs what it needs first (Debian packages, .venv) and is idempotent.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMPS := .stamps
PROTOS := $(wildcard proto/swarm/v1/*.proto)
PYTEST_ARGS ?=
# test files run on this many workers, each with its own lab (etcd, engines, registry in a slot
# of its own): the integration tests mostly wait on daemons, so two workers fit two CPUs
TEST_WORKERS ?= 2

.PHONY: all bootstrap venv proto test unit demo bench clean

all: venv

bootstrap: $(STAMPS)/bootstrap
$(STAMPS)/bootstrap: scripts/bootstrap.sh
	@mkdir -p $(STAMPS)
	bash scripts/bootstrap.sh
	@touch $@

venv: $(STAMPS)/venv proto
$(STAMPS)/venv: pyproject.toml setup.py | $(STAMPS)/bootstrap
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q grpcio-tools setuptools wheel
	$(PY) -m swarmd.protogen
	$(PY) -m pip install -q --no-build-isolation -e '.[test]'
	@touch $@

proto: proto/swarm/v1/agent_pb2.py
proto/swarm/v1/agent_pb2.py: $(PROTOS) swarmd/protogen.py | $(STAMPS)/venv
	$(PY) -m swarmd.protogen

test: venv
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest -q -p no:cacheprovider tests/unit $(PYTEST_ARGS)

demo: venv
	$(PY) -m swarmd.localcluster.demo

bench: venv
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(STAMPS) build *.egg-info proto/swarm/v1/*_pb2*
