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
