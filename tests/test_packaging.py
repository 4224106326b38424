"""The sdist and wheel build offline, pass ``twine check --strict`` and ship what they must.

The build runs on a copy of the files a build reads, so it writes no ``build/``
or ``*.egg-info`` into the shared work tree.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("packaging")
    src, out = base / "src", base / "dist"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.cfg"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "mixpeek_magics", src / "mixpeek_magics", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    # --no-isolation: no download; the venv's setuptools (dev extra) builds it
    build = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_twine_check_strict_passes(dists):
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists["wheel"]), str(dists["sdist"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2, check.stdout


def test_wheel_ships_py_typed_license_and_contract(dists):
    with zipfile.ZipFile(dists["wheel"]) as whl:
        names = set(whl.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        assert "mixpeek_magics/py.typed" in names
        assert f"{dist_info}/licenses/LICENSE" in names
        assert whl.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        contracts = sorted(n for n in names if n.startswith("mixpeek_magics/local/contract/") and n.endswith(".json"))
        expected = sorted(
            f"mixpeek_magics/local/contract/{p.name}" for p in (ROOT / "mixpeek_magics/local/contract").glob("*.json")
        )
        assert expected and contracts == expected
        meta = email.message_from_bytes(whl.read(f"{dist_info}/METADATA"))
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    classifiers = meta.get_all("Classifier")
    for c in (
        "Framework :: Jupyter",
        "Framework :: IPython",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.13",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering",
        "Operating System :: OS Independent",
    ):
        assert c in classifiers
    assert "Homepage, https://mixpeek.com" in meta.get_all("Project-URL")
    extras = set(meta.get_all("Provides-Extra"))
    assert {"local", "notebook", "plot", "all", "dev"} <= extras


def test_sdist_ships_license_py_typed_and_contract(dists):
    with tarfile.open(dists["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert "LICENSE" in names
    assert "mixpeek_magics/py.typed" in names
    assert "mixpeek_magics/local/contract/mixpeek-v0.82.json" in names
