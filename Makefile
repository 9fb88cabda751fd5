# Two entry points for a fresh machine (see README "Quick start"); both set up .venv first.
VENV ?= .venv
CORES ?= 2

.PHONY: env demo test lint

env:
	bash tools/install.sh

demo: env
	$(VENV)/bin/snakemake --profile profiles/local --cores $(CORES)

test: env
	OMP_NUM_THREADS=1 $(VENV)/bin/python -m pytest --durations=12

lint: env
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
