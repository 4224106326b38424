"""The fault suite: what it tried and whether it held, printed as one table at the end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.shell import magics_shell, sign_in

TABLE: list[tuple[str, str, str]] = []  # (fault tried, what must hold, outcome)


@pytest.fixture
def held():
    """``held(tried, expectation, ok, detail="")``: one row of the table; a row that did not hold fails."""

    def record(tried: str, expectation: str, ok: bool, detail: str = "", measured_only: bool = False) -> None:
        verdict = "held" if ok else ("NOT MET (measured)" if measured_only else "BROKE")
        TABLE.append((tried, expectation, verdict + (f" ({detail})" if detail else "")))
        assert ok or measured_only, f"{tried}: {expectation} did not hold {detail}"

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TABLE:
        return
    w1 = max(len(r[0]) for r in TABLE)
    w2 = max(len(r[1]) for r in TABLE)
    terminalreporter.section("fault suite: what was tried, what held")
    terminalreporter.write_line(f"{'fault':<{w1}}  {'must hold':<{w2}}  outcome")
    for tried, expect, outcome in TABLE:
        terminalreporter.write_line(f"{tried:<{w1}}  {expect:<{w2}}  {outcome}")


@pytest.fixture
def ip(monkeypatch) -> Iterator[Any]:
    with magics_shell(monkeypatch) as shell:
        yield shell


@pytest.fixture
def signed_in(ip, local_server, monkeypatch, tmp_path) -> Any:
    sign_in(ip, local_server, monkeypatch, tmp_path, "demo")
    return local_server
