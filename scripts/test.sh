#!/usr/bin/env bash
# Install everything the tests need and run the whole suite: unit + integration
# tests against the local server and moto's S3 server (both started by the
# fixtures), the notebooks (nbval) and the JupyterLab-in-Chromium browser test.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_installed ".[dev]"

# Debian's Chromium for the real-browser test. Never `playwright install`
# (it downloads a browser build, which this network refuses).
if [ ! -x /usr/bin/chromium ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
[ -x /usr/bin/chromium ] || { echo "Chromium could not be installed: the browser test cannot run" >&2; exit 1; }

# Keep every test's state out of the user's home, and everything the run writes
# to temp dirs (pytest's, the notebooks' throw-away homes, servers' data) in one
# scratch dir removed at the end: runs must not pile files up in /tmp.
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$SCRATCH/tmp"
export TMPDIR="$SCRATCH/tmp"
export MIXPEEK_MAGICS_DATA_DIR="$SCRATCH/data"
export MIXPEEK_MAGICS_CONFIG_DIR="$SCRATCH/config"
unset MIXPEEK_API_KEY MIXPEEK_BASE_URL MIXPEEK_NAMESPACE

set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg \
    --nbval-current-env --ignore-glob="*.ipynb_checkpoints*" tests notebooks "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: failing on purpose" >&2
    exit 1
fi
exit "$rc"
