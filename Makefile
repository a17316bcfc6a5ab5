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

test: lint
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(VENV)/bin/python -m pytest $(PYTEST_ARGS)
