"""The client's types tell the truth: mypy sees values on ``Mixpeek``, awaitables and async
iterators on ``AsyncMixpeek``; and the generated async protocols are in step with the resources."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

# Each checked line ends with a marker; the test finds mypy's answer by that line's number.
SNIPPET = """
from mixpeek_magics.client import AsyncMixpeek, Mixpeek


async def main() -> None:
    ac = AsyncMixpeek(api_key="k")
    reveal_type(await ac.tasks.get("t"))  # async-get
    reveal_type(ac.tasks.iter())  # async-iter
    reveal_type(await ac.tasks.wait("t"))  # async-wait
    reveal_type(await ac.batches.list_all())  # async-list
    reveal_type(ac.syncs.tasks("b", "s"))  # async-sync-tasks
    reveal_type(await ac.uploads.put_files([]))  # async-put-files
    reveal_type(ac.with_options(namespace="n").tasks)  # async-copy
    async for task in ac.tasks.iter():
        reveal_type(task)  # async-for
    sc = Mixpeek(api_key="k")
    reveal_type(sc.tasks.get("t"))  # sync-get
    reveal_type(sc.tasks.iter())  # sync-iter
    reveal_type(sc.collections.list())  # sync-generic-list
    reveal_type(sc.tasks.kill("t"))  # sync-kill
    pending = ac.tasks.get("t")
    print(pending.task_id)  # not-awaited
    for item in ac.tasks.iter():  # sync-for-over-async
        print(item)
"""

# The third-party packages are skipped (seen as Any): what is checked is this package's own types.
CONFIG = """
[mypy]
python_version = 3.10
follow_imports = silent
show_error_codes = True

[mypy-pydantic.*,pydantic_core.*,httpx.*,httpcore.*,anyio.*,sniffio.*,platformdirs.*]
follow_imports = skip
ignore_missing_imports = True
"""

TASK = "mixpeek_magics.client.models.tasks.Task"
PAGE = "mixpeek_magics.client.pagination.Page"


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy's notes and errors on the snippet, by marker."""
    work = tmp_path_factory.mktemp("typing")
    snippet = work / "snippet.py"
    snippet.write_text(textwrap.dedent(SNIPPET))
    (work / "mypy.ini").write_text(CONFIG)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(work / "mypy.ini"), "--cache-dir", str(work / "cache")]
        + [str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert "Revealed type" in result.stdout, result.stdout + result.stderr
    markers = {
        n: m.group(1)
        for n, line in enumerate(snippet.read_text().splitlines(), 1)
        if (m := re.search(r"# (\S+)$", line))
    }
    report: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        found = re.match(r".*snippet\.py:(\d+): (?:note|error): (.*)$", line)
        if found and int(found.group(1)) in markers:
            report.setdefault(markers[int(found.group(1))], []).append(found.group(2))
    return report


def _revealed(report: dict[str, list[str]], marker: str) -> str:
    notes = [m for m in report.get(marker, []) if m.startswith("Revealed type is ")]
    assert len(notes) == 1, (marker, report.get(marker))
    return notes[0].removeprefix("Revealed type is ").strip('"')


def test_async_resources_are_awaitables_of_the_models(mypy_report: dict[str, list[str]]) -> None:
    assert _revealed(mypy_report, "async-get") == TASK
    assert _revealed(mypy_report, "async-wait") == TASK
    assert _revealed(mypy_report, "async-list") == f"{PAGE}[mixpeek_magics.client.models.batches.Batch]"
    assert _revealed(mypy_report, "async-put-files") == "list[str | None | BaseException]"
    assert _revealed(mypy_report, "async-copy") == "mixpeek_magics.client.resources._async.AsyncTasks"
    # no error on any awaited line: each is an awaitable
    for marker in ("async-get", "async-wait", "async-list", "async-put-files"):
        assert not [m for m in mypy_report[marker] if not m.startswith("Revealed")], mypy_report[marker]


def test_async_iter_is_an_async_iterator(mypy_report: dict[str, list[str]]) -> None:
    assert _revealed(mypy_report, "async-iter") == f"typing.AsyncIterator[{TASK}]"
    assert _revealed(mypy_report, "async-sync-tasks") == f"typing.AsyncIterator[{TASK}]"
    assert _revealed(mypy_report, "async-for") == TASK


def test_sync_resources_return_the_models(mypy_report: dict[str, list[str]]) -> None:
    assert _revealed(mypy_report, "sync-get") == TASK
    assert _revealed(mypy_report, "sync-iter") == f"typing.Iterator[{TASK}]"
    assert _revealed(mypy_report, "sync-generic-list") == f"{PAGE}[mixpeek_magics.client.models.collections.Collection]"
    assert _revealed(mypy_report, "sync-kill") == "mixpeek_magics.client.models._base.DeleteResponse"


def test_misusing_the_async_client_is_a_type_error(mypy_report: dict[str, list[str]]) -> None:
    (error,) = [m for m in mypy_report.get("not-awaited", []) if "[attr-defined]" in m]
    assert '"Coroutine[Any, Any, Task]" has no attribute "task_id"' in error
    assert any('has no attribute "__iter__"' in m or "not iterable" in m for m in mypy_report["sync-for-over-async"])


def test_generated_async_protocols_are_current() -> None:
    """``scripts/gen_async_types.py --check`` fails when a resource changed and ``_async.py`` did not."""
    result = subprocess.run(
        [sys.executable, "scripts/gen_async_types.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_generator_notices_a_stale_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_async_types
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    current = gen_async_types.CANONICAL.read_text()
    copy = tmp_path / "_async.py"
    monkeypatch.setattr(gen_async_types, "TARGET", copy)
    copy.write_text(current)
    assert gen_async_types.main(["--check"]) == 0
    copy.write_text(current.replace("-> Task:", "-> dict:", 1))  # one method typed otherwise than its resource
    assert gen_async_types.main(["--check"]) == 1


def test_every_resource_module_is_an_attribute_of_both_clients() -> None:
    """A resource module without its ``cached_property`` (or left out of the generator) fails here."""
    import importlib
    import pkgutil

    from mixpeek_magics.client import AsyncMixpeek, Mixpeek, resources

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_async_types
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    modules = {m.name for m in pkgutil.iter_modules(resources.__path__) if not m.name.startswith("_")}
    assert modules == set(gen_async_types.RESOURCES)
    sync, asynchronous = Mixpeek(api_key="k"), AsyncMixpeek(api_key="k")
    for module, class_name in gen_async_types.RESOURCES.items():
        cls = getattr(importlib.import_module(f"mixpeek_magics.client.resources.{module}"), class_name)
        assert type(getattr(sync, module)) is cls and type(getattr(asynchronous, module)) is cls
    sync.close()
