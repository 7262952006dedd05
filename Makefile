# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
CONFIG ?= configs/demo.yaml
PYTEST_ARGS ?=

.PHONY: setup demo test clean

setup:
	bash scripts/setup.sh

demo:  # sets up only what $(CONFIG) needs (no vLLM, no Docker for the maths-like demo)
	bash scripts/setup.sh --for $(CONFIG)
	$(VENV)/bin/score run $(CONFIG)

test:
	SCORE_WITH_BROWSER=1 bash scripts/setup.sh
	bash scripts/run_tests.sh $(PYTEST_ARGS)

clean:
	rm -rf runs/ .pytest_cache
