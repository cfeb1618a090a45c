# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Which FAISS the venv gets: cpu (faiss-cpu, CI) or gpu (faiss-gpu, CUDA 12), never both.
FAISS ?= cpu

.PHONY: venv demo up test lint unit integration e2e bench clean

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[$(FAISS),dev]'
	touch $(INSTALLED)

venv: $(INSTALLED)

demo: venv
	$(BIN)/pinstream demo

up: venv
	$(BIN)/pinstream up

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit -q

integration: venv
	$(BIN)/pytest tests/integration -q

e2e: venv
	$(BIN)/pytest tests/e2e -q

# Unit and integration share one pytest session (one broker, one Ray);
# end-to-end drives its own stack through the `pinstream` command.
test: lint
	$(BIN)/pytest tests/unit tests/integration -q -rs --durations=10
	$(BIN)/pytest tests/e2e -q -rs --durations=5

# Speed and memory live here, not in timed tests: JSON results under bench/results/,
# then bench/results/report.md with every figure and the plots (PNG beside it).
# About 15 minutes on 2 CPUs; each module's --help gives the sizes to change.
bench: venv
	$(BIN)/python -m bench.ingest_bench --count 1000
	$(BIN)/python -m bench.serving_bench --seconds 2
	$(BIN)/python -m bench.shards_bench
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
