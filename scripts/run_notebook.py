"""Execute a notebook headless, save the executed copy and print its text outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main(src: str, dst: str) -> int:
    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(Path(src).parent)}}
    )
    failed = None
    try:
        client.execute()
    except CellExecutionError as exc:
        failed = exc
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        print(f"In [{cell.get('execution_count') or ' '}]: {cell.source.splitlines()[0] if cell.source else ''}")
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain")
            if text:
                print("   " + str(text).rstrip().replace("\n", "\n   "))
    print(f"\nexecuted notebook saved to {dst}")
    if failed is not None:
        print(f"\nthe notebook failed:\n{failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
