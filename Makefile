# Two entry points, both self-contained on a fresh machine (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: quickstart test install-dev install-run

# Install, then run notebooks/quickstart.ipynb headless against the embedded local server.
quickstart:
	bash scripts/quickstart.sh

# Install everything the tests need (incl. Chromium for the browser test), start nothing by hand, run the suite.
test:
	bash scripts/test.sh
