# Two entry points (README.md): `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_EVENTS ?= 2000000
DEMO_SEED ?= 42
# Bumped when demo-data writes other columns (2: region, platform; 3: the payments source), so `make demo` regenerates the data.
DEMO_DATA_VERSION := 3

.PHONY: demo test data build clean

$(BIN)/northstar: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,spark]'
	touch $@

data/warehouse/.generated-$(DEMO_EVENTS)-$(DEMO_SEED)-v$(DEMO_DATA_VERSION): $(BIN)/northstar
	rm -f data/warehouse/.generated-*
	$(BIN)/northstar demo-data --events $(DEMO_EVENTS) --seed $(DEMO_SEED) --out data/warehouse
	touch $@

data: data/warehouse/.generated-$(DEMO_EVENTS)-$(DEMO_SEED)-v$(DEMO_DATA_VERSION)

build: data
	$(BIN)/northstar build

demo: build

test: $(BIN)/northstar
	$(BIN)/python -m pytest -q

clean:
	rm -rf target data

# Benchmarks (not part of `make test`): build vs hand-written DuckDB vs dbt-duckdb at 1M/10M/100M events and
# compile at 1,000 metrics; rewrites BENCHMARKS.md and benchmarks/plot.png. About 10 minutes on 2 cores; 3 GB DuckDB memory limit for all tools keeps the 100M build under 4 GB RSS.
.PHONY: bench
bench: $(BIN)/northstar
	$(BIN)/python benchmarks/run.py --sizes 1000000 10000000 100000000 --memory-limit 3GB
