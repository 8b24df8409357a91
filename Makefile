# Everything a fresh machine needs. `make demo` runs the README's demo, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.leaf-installed

.PHONY: setup demo demo-cues test typecheck lint docs docs-serve bench bench-clive bench-quick clean \
	table-recorded table-variants models

setup: $(STAMP)

$(STAMP): pyproject.toml packages/leaf-iqa-models/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	# the packaged models (their own distribution and terms, not on PyPI) before `[all]`
	# asks for them, so pip finds them installed
	$(BIN)/python -m pip install -q -e packages/leaf-iqa-models
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	@scripts/install-system-deps.sh
	@touch $(STAMP)

demo: setup
	$(BIN)/leaf run configs/demo.yaml

demo-cues: setup
	$(BIN)/leaf run configs/demo-cues.yaml

# the docs site (warnings are errors), then every test, tests/test_lowest_versions.py included
# (a fresh venv from PyPI: minutes; pytest -m "not slow" leaves it out)
test: setup typecheck docs
	$(BIN)/python -m pytest -q -p no:cacheprovider

# the documentation site into site/ (mkdocs.yml); the CLI, config and API references are
# generated from the code, so a command or docstring that breaks them fails the build
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --quiet

docs-serve: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve

# the package ships py.typed: its annotations must hold ([tool.mypy] in pyproject.toml)
typecheck: setup
	$(BIN)/python -m mypy

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts

bench: setup
	$(BIN)/leaf bench configs/demo.yaml

bench-clive: setup
	$(BIN)/leaf bench configs/clive.yaml

bench-quick: setup
	$(BIN)/leaf bench configs/demo.yaml --quick

clean:
	rm -rf $(VENV) runs site .pytest_cache

table-recorded: setup
	$(BIN)/leaf bench configs/demo.yaml --set bench.protocol=new
	$(BIN)/leaf bench configs/ensemble.yaml --set bench.protocol=new
	$(BIN)/python benchmarks/recorded_teachers_table.py runs/demo/bench runs/ensemble/bench

table-variants: setup
	$(BIN)/python benchmarks/student_variants.py | tee runs/student-variants.md

# the packaged models (packages/leaf-iqa-models/src/leafiqa_models/), trained from ../shared
models: setup
	$(BIN)/python scripts/build_packaged_models.py
