"""The local server's SQLite store: one writing connection under a lock, a
reading connection per thread (WAL readers never wait for a writer)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from mixpeek_magics.local.db import Store


def test_read_one_never_waits_for_another_threads_transaction_and_one_does(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    store.meta_set("k", "committed")
    read = lambda: store.read_one("SELECT value FROM meta WHERE key='k'")["value"]  # noqa: E731
    inside, release = threading.Event(), threading.Event()
    seen_inside: list = []

    def writer():
        with store.tx() as c:
            c.execute("UPDATE meta SET value='uncommitted' WHERE key='k'")
            seen_inside.append(store.meta_get("k"))  # this thread's own transaction: its change
            seen_inside.append(read())  # read_one too
            inside.set()
            release.wait(5)

    t = threading.Thread(target=writer)
    t.start()
    assert inside.wait(5)
    started = time.monotonic()
    assert read() == "committed"  # another thread: the last commit, at once
    assert time.monotonic() - started < 1.0
    waited: list = []
    reader = threading.Thread(target=lambda: waited.append(store.meta_get("k")))
    reader.start()  # one() waits for the transaction, then sees it (a worker handed work inside one finds it)
    time.sleep(0.2)
    assert waited == []
    release.set()
    t.join(5)
    reader.join(5)
    assert seen_inside == ["uncommitted", "uncommitted"] and waited == ["uncommitted"]
    assert read() == "uncommitted"  # committed now
    store.close()


def test_readers_are_read_only_and_closed_with_the_store(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    with pytest.raises(sqlite3.OperationalError):
        store.read_one("INSERT INTO meta(key, value) VALUES ('x', 'y') RETURNING key")
    store.execute("INSERT INTO meta(key, value) VALUES ('x', 'y')")
    assert store.read_one("SELECT value FROM meta WHERE key='x'")["value"] == "y"
    readers = list(store._readers)
    assert readers
    store.close()
    for reader in readers:
        with pytest.raises(sqlite3.ProgrammingError):
            reader.execute("SELECT 1")


@pytest.mark.parametrize(
    "value",
    [
        {
            "big": 2**70,
            "negative": -(2**63),
            "edge": 2**63 - 1,
        },  # orjson writes no int beyond 64 bits, reads one as float
        {"id": "task_1234567890123456789", "float": 0.1, "huge": 1e300, "none": None, "flag": True},
        {"text": "café ü 東京", "list": [1, [2, 3]], "empty": {}},
        {"lone_surrogate": "caf\udce9"},  # a filename decoded with surrogateescape: not UTF-8
    ],
)
def test_documents_round_trip_exactly(value):
    from mixpeek_magics.local.db import dumps, loads

    text = dumps(value)
    assert isinstance(text, str) and "\n" not in text and ": " not in text  # compact
    back = loads(text)
    assert back == value
    assert [type(v) for v in back.values()] == [type(v) for v in value.values()]


def test_documents_follow_the_standard_librarys_rules_for_keys_dates_and_the_rest():
    import dataclasses
    import datetime
    import json

    from mixpeek_magics.local.db import dumps, dumps_bytes, loads
    from mixpeek_magics.local.deps import json_response

    @dataclasses.dataclass
    class Point:
        x: int

    when = datetime.datetime(2026, 11, 30, 1, 2, 3, tzinfo=datetime.timezone.utc)
    value = {1: "int key", "when": when, "point": Point(1), "tuple": (1, 2)}
    expected = json.loads(json.dumps(value, default=str))  # what the server wrote before orjson
    assert (
        loads(dumps(value))
        == expected
        == {"1": "int key", "when": "2026-11-30 01:02:03+00:00", "point": str(Point(1)), "tuple": [1, 2]}
    )
    assert json.loads(dumps_bytes(value)) == expected
    response = json_response({"uploads": [{"filename": "é.txt"}]}, 201)
    assert response.status_code == 201 and json.loads(response.body) == {"uploads": [{"filename": "é.txt"}]}
    assert loads('{"a": NaN}')["a"] != loads('{"a": NaN}')["a"]  # json's NaN, read as before
    with pytest.raises(json.JSONDecodeError):
        loads("{not json")
