"""Ingestion planning: expansion, stats, MIME, metadata, connections, frames, hashing."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import mixpeek_magics.ingest.plan as plan_mod
from mixpeek_magics._mime import blob_type_for, guess_mime, sniff_mime
from mixpeek_magics.ingest.parser import SourceLine, parse_body
from mixpeek_magics.ingest.plan import (
    Plan,
    PlanError,
    PlanItem,
    build_plan,
    plan_from_records,
    read_digest,
    sha256_file,
)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


def write(root: Path, rel: str, data: bytes = b"x") -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def plan_of(body: str, cwd: Path, ns=None, **kw) -> Plan:
    return build_plan(parse_body(body, ns), cwd=cwd, **kw)


def rel_sources(plan: Plan, root: Path) -> list[str]:
    return [os.path.relpath(i.source, root) if i.kind == "file" else i.source for i in plan.items]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(tmp_path, "shots/b.jpg", JPEG + b"b")
    write(tmp_path, "shots/a.jpg", JPEG + b"aa")
    write(tmp_path, "shots/notes.txt", b"hello")
    write(tmp_path, "shots/2026/jan/c.jpg", JPEG)
    write(tmp_path, "shots/2026/d.JPG", JPEG)
    write(tmp_path, "shots/.hidden.jpg", JPEG)
    write(tmp_path, "shots/.ipynb_checkpoints/a-checkpoint.jpg", JPEG)
    write(tmp_path, "shots/.git/objects/x.jpg", JPEG)
    write(tmp_path, "clips/intro.mp4", MP4)
    write(tmp_path, "docs/report.pdf", PDF)
    return tmp_path


# --------------------------------------------------------------------------- files


def test_glob_sorted_and_not_recursive(tree):
    plan = plan_of("shots/*.jpg", tree)
    assert rel_sources(plan, tree) == ["shots/a.jpg", "shots/b.jpg"]
    assert all(i.line == 1 and i.kind == "file" and os.path.isabs(i.source) for i in plan)


def test_recursive_glob(tree):
    plan = plan_of("shots/**/*.jpg", tree)
    assert rel_sources(plan, tree) == ["shots/2026/jan/c.jpg", "shots/a.jpg", "shots/b.jpg"]


def test_question_mark_glob(tree):
    assert rel_sources(plan_of("shots/?.jpg", tree), tree) == ["shots/a.jpg", "shots/b.jpg"]


def test_directory_is_recursive_and_skips_hidden(tree):
    plan = plan_of("shots", tree)
    assert rel_sources(plan, tree) == [
        "shots/2026/d.JPG",
        "shots/2026/jan/c.jpg",
        "shots/a.jpg",
        "shots/b.jpg",
        "shots/notes.txt",
    ]
    assert plan_of("shots/", tree).to_records() == plan.to_records()


def test_hidden_entries_reachable_when_named_literally(tree):
    plan = plan_of("shots/.ipynb_checkpoints/*.jpg\nshots/.hidden.jpg", tree)
    assert rel_sources(plan, tree) == ["shots/.ipynb_checkpoints/a-checkpoint.jpg", "shots/.hidden.jpg"]


def test_brackets_are_literal_in_names_and_cwd(tmp_path):
    root = tmp_path / "run[1]"
    write(root, "shot [1].jpg", JPEG)
    write(root, "shot 1.jpg", JPEG)
    plan = plan_of("shot [1]*.jpg\nshot [1].jpg", root)
    assert [os.path.basename(i.source) for i in plan] == ["shot [1].jpg"]
    assert len(plan.duplicates) == 1


def test_home_expansion(tmp_path, monkeypatch):
    home = tmp_path / "home"
    write(home, "media/x.png", PNG)
    monkeypatch.setenv("HOME", str(home))
    plan = plan_of("~/media/*.png\n~/media/x.png", tmp_path / "elsewhere")
    assert [i.source for i in plan] == [str(home / "media/x.png")]


def test_absolute_paths_and_file_urls(tree):
    p = tree / "shots/a.jpg"
    plan = plan_of(f"{p}\nfile://{tree}/docs/report.pdf", Path("/"))
    assert [i.source for i in plan] == [str(p), str(tree / "docs/report.pdf")]


def test_stats_and_mime(tree):
    plan = plan_of("shots/a.jpg\nclips/intro.mp4\ndocs/report.pdf\nshots/notes.txt", tree)
    got = [(os.path.basename(i.source), i.size, i.mime_type, i.blob_type) for i in plan]
    assert got == [
        ("a.jpg", len(JPEG) + 2, "image/jpeg", "image"),
        ("intro.mp4", len(MP4), "video/mp4", "video"),
        ("report.pdf", len(PDF), "application/pdf", "pdf"),
        ("notes.txt", 5, "text/plain", "text"),
    ]
    assert plan.total_bytes == sum(i.size for i in plan)


def test_magic_bytes_beat_a_wrong_extension(tmp_path):
    write(tmp_path, "really-a-png.jpg", PNG)
    assert plan_of("really-a-png.jpg", tmp_path).items[0].mime_type == "image/png"


def test_missing_files_are_all_listed_with_lines(tree):
    body = "shots/a.jpg\nnope.jpg\nshots/*.gif\nempty_dir\nclips/intro.mp4\nmissing/**/*.png"
    (tree / "empty_dir" / ".only-hidden").mkdir(parents=True)
    with pytest.raises(PlanError) as info:
        plan_of(body, tree)
    probs = info.value.problems
    assert [p.line for p in probs] == [2, 3, 4, 6]
    assert "file not found" in probs[0].message and "nope.jpg" in probs[0].message
    assert "no files match 'shots/*.gif'" in probs[1].message
    assert "no (non-hidden) files" in probs[2].message
    assert "no files match" in probs[3].message
    text = str(info.value)
    assert text.startswith("4 problems found, nothing was ingested")
    for p in probs:
        assert f"line {p.line}: " in text
    assert isinstance(info.value, ValueError)


def test_broken_symlink_and_special_files(tmp_path):
    os.symlink(tmp_path / "gone.jpg", tmp_path / "link.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(PlanError) as info:
        plan_of("link.jpg\npipe.jpg", tmp_path)
    msgs = [(p.line, p.message.split(":")[0]) for p in info.value.problems]
    assert msgs == [(1, "broken symbolic link"), (2, "not a regular file")]


def test_unreadable_file_is_reported(tmp_path, monkeypatch):
    write(tmp_path, "secret.jpg", JPEG)
    write(tmp_path, "fine.jpg", JPEG)
    real_open = open

    def fake_open(path, *a, **kw):
        if str(path).endswith("secret.jpg"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(plan_mod, "open", fake_open, raising=False)
    with pytest.raises(PlanError) as info:
        plan_of("*.jpg", tmp_path)
    [p] = info.value.problems
    assert p.line == 1 and "permission denied" in p.message and "secret.jpg" in p.message


def test_symlink_to_same_file_deduplicated(tmp_path):
    write(tmp_path, "real.jpg", JPEG)
    os.symlink(tmp_path / "real.jpg", tmp_path / "alias.jpg")
    plan = plan_of("real.jpg\nalias.jpg", tmp_path)
    assert [os.path.basename(i.source) for i in plan] == ["real.jpg"]


# --------------------------------------------------------------------------- metadata, dedupe


def test_metadata_merge_default_then_line(tree):
    body = 'shots/a.jpg {"label": "cat", "source": "line"}\nshots/b.jpg'
    plan = plan_of(body, tree, default_metadata={"source": "default", "batch": 7})
    assert [i.metadata for i in plan] == [
        {"source": "line", "batch": 7, "label": "cat"},
        {"source": "default", "batch": 7},
    ]
    # each item owns its dict
    plan.items[1].metadata["x"] = 1
    assert "x" not in plan.items[0].metadata


def test_duplicates_appear_once_and_later_metadata_wins(tree):
    body = (
        'shots/*.jpg {"set": "all"}\n'
        'shots/a.jpg {"label": "special"}\n'
        "./shots/../shots/b.jpg\n"
        "https://x.io/v.mp4\n"
        'https://x.io/v.mp4 {"t": 1}\n'
    )
    plan = plan_of(body, tree)
    assert rel_sources(plan, tree) == ["shots/a.jpg", "shots/b.jpg", "https://x.io/v.mp4"]
    assert [i.metadata for i in plan] == [{"set": "all", "label": "special"}, {"set": "all"}, {"t": 1}]
    assert [i.line for i in plan] == [1, 1, 4]
    assert [line for _src, line in plan.duplicates] == [2, 3, 5]


def test_urls_and_views(tree):
    body = (
        'https://cdn.example.com/intro.mp4?sig=abc {"title": "Intro"}\n'
        "https://cdn.example.com/page\n"
        "shots/a.jpg\n"
        "s3://raw/2026/ via conn_1\n"
    )
    plan = plan_of(body, tree)
    assert [i.kind for i in plan] == ["url", "url", "file", "s3"]
    u1, u2 = plan.urls
    assert (u1.mime_type, u1.size, u1.filename, u1.metadata) == ("video/mp4", None, "intro.mp4", {"title": "Intro"})
    assert u2.mime_type is None
    assert [i.source for i in plan.syncs] == ["s3://raw/2026/"]
    assert len(plan.files) == 1 and plan.total_bytes == plan.files[0].size
    assert len(plan) == 4 and bool(plan)
    assert plan.summary() == f"1 file ({plan.total_bytes} B), 2 URLs, 1 sync"


def test_to_records_for_dataframes(tree):
    plan = plan_of('shots/a.jpg {"k": 1}\ns3://raw/x via conn_1', tree)
    recs = plan.to_records()
    assert recs[0] == {
        "source": str(tree / "shots/a.jpg"),
        "kind": "file",
        "line": 1,
        "row": None,
        "filename": "a.jpg",
        "size": len(JPEG) + 2,
        "mime_type": "image/jpeg",
        "blob_type": "image",
        "metadata": {"k": 1},
        "connection": None,
        "connection_id": None,
        "sha256": None,
    }
    assert recs[1]["kind"] == "s3" and recs[1]["connection_id"] == "conn_1" and recs[1]["size"] is None
    recs[0]["metadata"]["k"] = 2
    assert plan.items[0].metadata == {"k": 1}


def test_hash_files(tree):
    plan = plan_of("shots/*.jpg", tree, hash_files=True)
    for item in plan:
        assert item.sha256 == hashlib.sha256(Path(item.source).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- connections

KNOWN = {"Production S3": "conn_prod", "conn_prod": "conn_prod", "Team Drive": "conn_drive"}


def test_connections_resolved_by_name_or_id(tmp_path):
    body = (
        's3://raw/a via "Production S3"\n'
        "s3://raw/b via conn_prod\n"
        's3://raw/c via "production s3"\n'
        'gdrive://0AHx via "Team Drive"\n'
        "gdrive://0AHy via conn_drive\n"  # an id that is only a value of the mapping
    )
    plan = build_plan(parse_body(body), cwd=tmp_path, known_connections=KNOWN)
    assert [(i.kind, i.connection_id) for i in plan] == [
        ("s3", "conn_prod"),
        ("s3", "conn_prod"),
        ("s3", "conn_prod"),
        ("gdrive", "conn_drive"),
        ("gdrive", "conn_drive"),
    ]
    assert plan.items[0].connection == "Production S3"


def test_unknown_connections_all_listed(tmp_path):
    write(tmp_path, "a.jpg", JPEG)
    body = 'a.jpg\ns3://raw/a via "Prodution S3"\ngdrive://x via zzz\nmissing.jpg'
    with pytest.raises(PlanError) as info:
        build_plan(parse_body(body), cwd=tmp_path, known_connections=KNOWN)
    probs = info.value.problems
    assert [p.line for p in probs] == [2, 3, 4]
    assert "unknown connection 'Prodution S3'; did you mean 'Production S3'?" in probs[0].message
    assert probs[1].message == (
        "unknown connection 'zzz'; known connections: 'Production S3', 'Team Drive', 'conn_prod'"
    )
    assert "file not found" in probs[2].message
    with pytest.raises(PlanError, match="no storage connections exist"):
        build_plan(parse_body("s3://a via x"), cwd=tmp_path, known_connections={})


def test_connections_unchecked_when_not_given(tmp_path):
    plan = build_plan(parse_body('s3://a/b via "Anything"'), cwd=tmp_path)
    assert plan.items[0].connection_id == "Anything"


def test_same_sync_twice_once(tmp_path):
    plan = build_plan(
        parse_body('s3://a/b via conn_prod\ns3://a/b via "Production S3"'), cwd=tmp_path, known_connections=KNOWN
    )
    assert len(plan) == 1


# --------------------------------------------------------------------------- frames


def test_plan_from_records(tree):
    records = [
        {"path": "shots/a.jpg", "label": "cat", "score": 0.5, "when": dt.date(2026, 1, 2), "extra": "x"},
        {"path": "https://x.io/v.mp4", "label": "dog", "score": float("nan"), "when": None, "extra": "y"},
        {
            "path": tree / "docs/report.pdf",
            "label": None,
            "score": 1,
            "when": dt.datetime(2026, 1, 2, 3, 4),
            "extra": "z",
        },
    ]
    plan = plan_from_records(records, "path", ["label", "score", "when"], cwd=tree, default_metadata={"src": "df"})
    assert [(i.kind, i.row, i.line) for i in plan] == [("file", 0, None), ("url", 1, None), ("file", 2, None)]
    assert [i.metadata for i in plan] == [
        {"src": "df", "label": "cat", "score": 0.5, "when": "2026-01-02"},
        {"src": "df", "label": "dog", "score": None, "when": None},
        {"src": "df", "label": None, "score": 1, "when": "2026-01-02T03:04:00"},
    ]
    assert plan.items[0].mime_type == "image/jpeg"
    # "*" = every column except the path; a comma string works like a list
    star = plan_from_records(records[:1], "path", "*", cwd=tree)
    assert set(star.items[0].metadata) == {"label", "score", "when", "extra"}
    csv = plan_from_records(records[:1], "path", "label, extra", cwd=tree)
    assert csv.items[0].metadata == {"label": "cat", "extra": "x"}
    assert plan_from_records(records[:1], "path", None, cwd=tree).items[0].metadata == {}


def test_plan_from_records_bad_rows_all_named(tree):
    class Opaque:
        pass

    records = [
        {"path": "shots/a.jpg", "label": "ok"},
        {"file": "shots/b.jpg", "label": "x"},  # 1: no path column
        {"path": "", "label": "x"},  # 2: empty
        {"path": float("nan"), "label": "x"},  # 3: missing value
        {"path": "nope.jpg", "label": "x"},  # 4: missing file
        {"path": "s3://bucket/key.jpg", "label": "x"},  # 5: unsupported
        {"path": "shots/b.jpg"},  # 6: missing metadata column
        {"path": "shots/b.jpg", "label": Opaque()},  # 7: not JSON
        {"path": 42, "label": "x"},  # 8: not a path
        "not a mapping",  # 9
    ]
    with pytest.raises(PlanError) as info:
        plan_from_records(records, "path", ["label"], cwd=tree)
    probs = info.value.problems
    assert [p.row for p in probs] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert all(p.line is None for p in probs)
    expected = [
        "no column 'path'",
        "empty 'path'",
        "empty 'path'",
        "file not found",
        "unsupported",
        "no metadata column 'label'",
        "not JSON-serialisable",
        "must be a path or URL",
        "expected a mapping",
    ]
    for p, frag in zip(probs, expected):
        assert frag in p.message, (p, frag)
    assert "row 4: file not found" in str(info.value)


def test_plan_from_records_uses_index_labels(tree):
    with pytest.raises(PlanError) as info:
        plan_from_records([{"p": "shots/a.jpg"}, {"p": "gone.png"}], "p", cwd=tree, index=["r-a", "r-b"])
    assert [str(p) for p in info.value.problems] == [f"row r-b: file not found: 'gone.png' ({tree / 'gone.png'})"]


def test_plan_from_records_numpy_like_values(tree):
    class Scalar:  # quacks like a numpy scalar
        def __init__(self, v):
            self.v = v

        def item(self):
            return self.v

    class Array:
        def tolist(self):
            return [1, 2]

    plan = plan_from_records([{"path": "shots/a.jpg", "a": Scalar(3), "b": Array()}], "path", ["a", "b"], cwd=tree)
    assert plan.items[0].metadata == {"a": 3, "b": [1, 2]}


# --------------------------------------------------------------------------- hashing


@pytest.mark.parametrize("size", [0, 1, 7, 64, 65, 1000])
@pytest.mark.parametrize("chunk", [1, 8, 64, 1 << 20])
def test_sha256_streaming_matches_hashlib(tmp_path, size, chunk):
    data = os.urandom(size)
    p = write(tmp_path, "blob.bin", data)
    assert sha256_file(p, chunk_size=chunk) == hashlib.sha256(data).hexdigest()


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=700))
def test_sha256_property(tmp_path_factory, data, chunk):
    p = tmp_path_factory.mktemp("h") / "f"
    p.write_bytes(data)
    assert sha256_file(str(p), chunk) == hashlib.sha256(data).hexdigest()


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=700), st.integers(min_value=0, max_value=600))
def test_read_digest_gives_size_hash_and_head_in_one_pass(tmp_path_factory, data, chunk, head_size):
    p = tmp_path_factory.mktemp("h") / "f"
    p.write_bytes(data)
    assert read_digest(p, chunk, head_size) == (len(data), hashlib.sha256(data).hexdigest(), data[:head_size])


def test_read_digest_reads_what_is_there_when_the_file_grew(tmp_path, monkeypatch):
    """The size is what was hashed: a file that grows after its stat is read to its end."""
    p = write(tmp_path, "g.bin", b"x" * 100)
    real_fstat = os.fstat
    monkeypatch.setattr(
        os, "fstat", lambda fd: os.stat_result((0,) * 6 + (10,) + (0,) * 3) if fd == opened[0] else real_fstat(fd)
    )
    opened = [None]
    real_open = open

    def spying_open(*args, **kwargs):
        fh = real_open(*args, **kwargs)
        opened[0] = fh.fileno()
        return fh

    monkeypatch.setattr("builtins.open", spying_open)
    assert read_digest(p) == (100, hashlib.sha256(b"x" * 100).hexdigest(), b"x" * 100)


def test_sha256_rejects_bad_chunk(tmp_path):
    p = write(tmp_path, "f", b"abc")
    with pytest.raises(ValueError):
        sha256_file(p, chunk_size=0)


# --------------------------------------------------------------------------- mime


@pytest.mark.parametrize(
    "name,head,expected",
    [
        ("a.JPG", None, "image/jpeg"),
        ("a.png", None, "image/png"),
        ("a.webp", None, "image/webp"),
        ("movie.mov", None, "video/quicktime"),
        ("song.mp3", None, "audio/mpeg"),
        ("sheet.xlsx", None, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("data.csv", None, "text/csv"),
        ("https://x.io/a/b.mp4?sig=1#t=3", None, "video/mp4"),
        ("noext", None, "application/octet-stream"),
        ("x.jpg", PNG, "image/png"),
        ("noext", JPEG, "image/jpeg"),
        ("noext", b"GIF89a....", "image/gif"),
        ("noext", b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        ("noext", b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        ("noext", MP4, "video/mp4"),
        ("voice.m4a", b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00", "audio/mp4"),
        ("clip.mov", b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "video/quicktime"),
        ("noext", PDF, "application/pdf"),
        ("noext", b"ID3\x03\x00", "audio/mpeg"),
        ("noext", b"fLaC\x00", "audio/flac"),
        ("noext", b"\x1a\x45\xdf\xa3\x01\x00webm", "video/webm"),
        ("doc.docx", b"PK\x03\x04rest", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("noext", b"PK\x03\x04rest", "application/zip"),
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/vnd.ms-excel"),
        ("table.csv", b"a,b\n1,2\n", "text/csv"),
        ("noext", b"just some text\n", "text/plain"),
        ("noext", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        ("noext", b"\x00\x01\x02\x03", "application/octet-stream"),
    ],
)
def test_guess_mime(name, head, expected):
    assert guess_mime(name, head) == expected


@pytest.mark.parametrize(
    "mime,blob",
    [
        ("image/jpeg", "image"),
        ("image/gif", "image"),
        ("video/mp4", "video"),
        ("audio/mpeg", "audio"),
        ("application/pdf", "pdf"),
        ("text/csv", "excel"),
        ("application/vnd.ms-excel", "excel"),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "excel"),
        ("text/plain; charset=utf-8", "text"),
        ("text/markdown", "text"),
        ("application/json", "text"),
        ("application/zip", None),
        ("application/octet-stream", None),
        (None, None),
    ],
)
def test_blob_type_for(mime, blob):
    assert blob_type_for(mime) == blob


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.one_of(st.none(), st.binary(max_size=64)))
def test_mime_never_crashes(name, head):
    m = guess_mime(name, head)
    assert isinstance(m, str) and "/" in m
    assert sniff_mime(head or b"") is None or "/" in sniff_mime(head or b"")


# --------------------------------------------------------------------------- end to end


def test_interpolated_body_to_plan(tree):
    ns = {"extra_dir": tree / "clips"}
    plan = plan_of('shots/**/*.jpg {"set": "shots"}\n{extra_dir}/*.mp4\n', tree, ns)
    assert rel_sources(plan, tree) == ["shots/2026/jan/c.jpg", "shots/a.jpg", "shots/b.jpg", "clips/intro.mp4"]
    assert [i.line for i in plan] == [1, 1, 1, 2]


def test_plan_item_is_plain_data():
    item = PlanItem("https://x.io/", "url", 3)
    assert item.filename == "" and item.blob_type is None and item.path is None
    assert PlanItem("s3://bucket/a/b.jpg", "s3", 1).filename == "b.jpg"


def test_unknown_kind_is_a_problem(tmp_path):
    with pytest.raises(PlanError, match="unknown source kind"):
        build_plan([SourceLine(1, "ftp", "ftp://x")], cwd=tmp_path)
