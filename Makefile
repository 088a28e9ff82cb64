# Every target sets up what it needs itself: `make test` on a fresh machine
# creates .venv, installs riverlog editable (compiling native/) and runs tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NATIVE_SRC := $(wildcard native/*.c native/*.h native/build_native.py)

.PHONY: install test bench bench-storage bench-broker bench-client bench-group bench-raft bench-cluster sim sim-metadata run clean

$(STAMP): pyproject.toml setup.py $(NATIVE_SRC)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -c "from riverlog import native; assert native.NATIVE, 'native module did not build'"
	touch $(STAMP)

install: $(STAMP)

# The suite runs with the compiled native module; the storage and records
# tests run a second time with the pure-Python twins forced.
test: install
	$(PY) -m pytest -q -p no:cacheprovider
	RIVERLOG_NO_NATIVE=1 $(PY) -m pytest -q -p no:cacheprovider tests/storage tests/records tests/native

bench: bench-storage bench-broker bench-client bench-group bench-raft bench-cluster

bench-storage: install
	$(PY) -m bench.storage_bench

# kcat (Debian's package) is one of the load generators; without it its row is left out.
bench-broker: install
	command -v kcat >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq kcat) || echo "kcat not installed: its row is left out"
	$(PY) -m bench.broker_bench

# riverlog's Python client beside confluent-kafka against one broker.
bench-client: install
	$(PY) -m bench.client_bench

# Consumer groups with confluent-kafka: takeover after a leave and a kill, latency added by a group.
bench-group: install
	$(PY) -m bench.group_bench

# A 3-voter Raft quorum in three processes: commits/s, commit latency, kill -9 of the leader to a new leader.
bench-raft: install
	$(PY) -m bench.raft_bench

# A 3-voter cluster on loopback: controller failover, broker fencing, 1,000 topics, metadata propagation.
bench-cluster: install
	$(PY) -m bench.cluster_bench

# The seeded Raft simulation: `make sim SEEDS=10000` runs many seeds over every
# core; `make sim SEED=42` replays one with its trace.
SEEDS ?= 200
sim: install
	$(PY) -m tests.sim $(if $(SEED),--seed $(SEED),--seeds $(SEEDS))

# The controller and metadata replay on the simulated quorum (brokers, fencing,
# topic operations): `make sim-metadata SEEDS=1000`, or SEED=42 for its trace.
sim-metadata: install
	$(PY) -m tests.sim --metadata $(if $(SEED),--seed $(SEED),--seeds $(SEEDS))

run: install
	$(VENV)/bin/riverlog broker start

clean:
	rm -rf $(VENV) build *.egg-info native/_native.c native/_native*.so
