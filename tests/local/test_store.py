"""The local server's SQLite store: one writing connection under a lock, a
reading connection per thread (WAL readers never wait for a writer)."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from mixpeek_magics.local.db import Store


def test_reads_never_wait_for_another_threads_transaction(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    store.meta_set("k", "committed")
    inside, release = threading.Event(), threading.Event()
    seen_inside: list = []

    def writer():
        with store.tx() as c:
            c.execute("UPDATE meta SET value='uncommitted' WHERE key='k'")
            seen_inside.append(store.meta_get("k"))  # this thread's own transaction: its change
            inside.set()
            release.wait(5)

    t = threading.Thread(target=writer)
    t.start()
    assert inside.wait(5)
    started = time.monotonic()
    assert store.meta_get("k") == "committed"  # another thread: the last commit, at once
    assert time.monotonic() - started < 1.0
    release.set()
    t.join(5)
    assert seen_inside == ["uncommitted"]
    assert store.meta_get("k") == "uncommitted"  # committed now
    store.close()


def test_readers_are_read_only_and_closed_with_the_store(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    with pytest.raises(sqlite3.OperationalError):
        store.one("INSERT INTO meta(key, value) VALUES ('x', 'y') RETURNING key")  # writes go through execute/tx
    store.execute("INSERT INTO meta(key, value) VALUES ('x', 'y')")
    assert store.one("SELECT value FROM meta WHERE key='x'")["value"] == "y"
    readers = list(store._readers)
    assert readers
    store.close()
    for reader in readers:
        with pytest.raises(sqlite3.ProgrammingError):
            reader.execute("SELECT 1")
