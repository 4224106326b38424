#!/usr/bin/env bash
# Install the package and run notebooks/quickstart.ipynb headless, end to end,
# against the embedded local Mixpeek server (no account, no network needed).
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_installed ".[local,notebook,plot]"
"$VENV/bin/python" -m pip install -q nbclient nbformat 2>&1 | grep -v "is ignored" || true
mkdir -p build
# The notebook's throw-away home (a temp dir) goes when the run ends; build/quickstart.ipynb stays.
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
TMPDIR="$SCRATCH" "$VENV/bin/python" scripts/run_notebook.py notebooks/quickstart.ipynb build/quickstart.ipynb
