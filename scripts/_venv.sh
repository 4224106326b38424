# Sourced by the entry scripts: create the venv once and install the project with the given extras.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
ensure_installed() {  # $1: extras spec, e.g. ".[dev]"
    "$VENV/bin/python" -m pip install -q -e "$1" 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/python" -c "import mixpeek_magics" || { echo "install of $1 failed" >&2; exit 1; }
    # Notebook runners (nbval, nbclient, JupyterLab) must start kernels from this venv.
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
}
