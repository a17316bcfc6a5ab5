# One-file entry: `make demo` runs the two-process demo, `make test` runs lint + the test suite.
# Both create/refresh .venv/ first (fast when nothing changed).
.PHONY: setup demo test lint

VENV := .venv
OUT ?= outputs/demo

setup:
	@bash scripts/setup.sh

demo: setup
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(VENV)/bin/hume deploy --config configs/deploy/demo.yaml --output $(OUT)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# One pytest worker per core, each test file in one worker (files share their expensive fixtures:
# a LIBERO environment, a tiny training run). Most tests wait on processes, sockets and clocks:
# on 2 cores the suite took 7 min 9 s this way against 12 min 52 s in one process.
test: lint
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(VENV)/bin/python -m pytest -n auto --dist loadfile $(PYTEST_ARGS)
