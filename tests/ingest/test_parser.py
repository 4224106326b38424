"""The %%ingest body parser: line forms, comments, metadata, interpolation, errors."""

from __future__ import annotations

import json
import string
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mixpeek_magics.ingest.parser import (
    IngestSyntaxError,
    ParseError,
    SourceLine,
    parse_body,
    split_lines,
)


def one(body: str, ns=None) -> SourceLine:
    lines = parse_body(body, ns)
    assert len(lines) == 1, lines
    return lines[0]


def errors_of(body: str, ns=None) -> list[ParseError]:
    with pytest.raises(IngestSyntaxError) as info:
        parse_body(body, ns)
    return info.value.errors


# --------------------------------------------------------------------------- line forms


def test_issue_example_body():
    body = (
        "data/shots/**/*.jpg                       # local files, globs, directories\n"
        'https://example.com/intro.mp4  {"title": "Intro"}   # URL with inline metadata\n'
        "{extra_dir}/*.png                         # Python variables interpolated\n"
        's3://raw-media/2026/ via "Production S3"  # server-side sync from a connection\n'
        "gdrive://0AH-Xabc123 via conn_abc123      # (routes to the connections issue)\n"
    )
    lines = parse_body(body, {"extra_dir": "more/pngs"})
    assert [(l.line, l.kind, l.target, l.metadata, l.connection) for l in lines] == [
        (1, "file", "data/shots/**/*.jpg", {}, None),
        (2, "url", "https://example.com/intro.mp4", {"title": "Intro"}, None),
        (3, "file", "more/pngs/*.png", {}, None),
        (4, "s3", "s3://raw-media/2026/", {}, "Production S3"),
        (5, "gdrive", "gdrive://0AH-Xabc123", {}, "conn_abc123"),
    ]
    assert lines[1].raw == body.splitlines()[1]


@pytest.mark.parametrize(
    "text,kind,target",
    [
        ("photo.jpg", "file", "photo.jpg"),
        ("~/media/*.mp4", "file", "~/media/*.mp4"),
        ("/abs/dir/", "file", "/abs/dir/"),
        ("data/my files/a b.jpg", "file", "data/my files/a b.jpg"),
        ("file:///tmp/a%20b.png", "file", "/tmp/a b.png"),
        ("file://localhost/tmp/x.png", "file", "/tmp/x.png"),
        ("http://example.com/a.png", "url", "http://example.com/a.png"),
        ("HTTPS://Example.com/v.mp4?x=1&y=2", "url", "HTTPS://Example.com/v.mp4?x=1&y=2"),
        ("C:\\data\\x.jpg", "file", "C:\\data\\x.jpg"),
    ],
)
def test_source_kinds(text, kind, target):
    s = one(text)
    assert (s.kind, s.target, s.connection, s.metadata) == (kind, target, None, {})


def test_s3_and_gdrive_connections():
    lines = parse_body(
        "s3://bucket via conn_1\n"
        's3://bucket/deep/prefix/ via "My \\"quoted\\" conn"\n'
        'gdrive://abc_DEF-123/ via "Drive \\\\ share"\n'
    )
    assert [(l.target, l.connection) for l in lines] == [
        ("s3://bucket", "conn_1"),
        ("s3://bucket/deep/prefix/", 'My "quoted" conn'),
        ("gdrive://abc_DEF-123", "Drive \\ share"),
    ]


def test_sync_with_metadata_and_comment():
    s = one('s3://raw/2026/ via "Production S3" {"source": "s3"}  # nightly')
    assert (s.kind, s.connection, s.metadata) == ("s3", "Production S3", {"source": "s3"})


def test_blank_lines_and_comments_are_ignored():
    body = "\n   \n# a comment\n   # indented comment\n\ta.jpg\t# trailing\n\n"
    lines = parse_body(body)
    assert [(l.line, l.target) for l in lines] == [(5, "a.jpg")]
    assert parse_body("") == []
    assert parse_body("# only\n\n") == []


def test_crlf_line_endings():
    lines = parse_body('a.jpg\r\nhttps://x.io/b.png {"k": 1}\r\n')
    assert [(l.line, l.target, l.metadata) for l in lines] == [(1, "a.jpg", {}), (2, "https://x.io/b.png", {"k": 1})]


# --------------------------------------------------------------------------- comments


def test_hash_after_non_space_is_part_of_token():
    assert one("https://x.io/a#frag").target == "https://x.io/a#frag"
    assert one("shots/take#2.jpg   # comment").target == "shots/take#2.jpg"


def test_hash_after_space_starts_comment_unless_quoted():
    assert one("my dir/a.jpg #1").target == "my dir/a.jpg"
    assert one('"my dir/a.jpg #1"').target == "my dir/a.jpg #1"
    assert one('"ride via bus/#2.jpg"  # comment').target == "ride via bus/#2.jpg"


def test_hash_inside_metadata_and_connection_name_is_not_a_comment():
    s = one('s3://b/p via "team #1" {"tag": "#x # y", "n": "}"}  # real comment')
    assert s.connection == "team #1"
    assert s.metadata == {"tag": "#x # y", "n": "}"}


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    "meta",
    [
        {},
        {"title": "Intro"},
        {"nested": {"a": {"b": [1, {"c": "}"}]}}},
        {"s": 'has } and { and # and \\" quote'},
        {"unicode": "café ☕", "n": 1.5, "t": True, "z": None},
    ],
)
def test_metadata_roundtrip(meta):
    s = one("https://example.com/v.mp4   " + json.dumps(meta, ensure_ascii=False))
    assert s.metadata == meta
    assert s.target == "https://example.com/v.mp4"


def test_metadata_needs_leading_whitespace_and_end_of_line():
    # glued to the token: it is an interpolation, evaluated as Python
    s = one('a{"x"}.jpg')
    assert s.target == "ax.jpg" and s.metadata == {}
    errs = errors_of('a.jpg {"x": 1} trailing.jpg')
    assert [(e.line, e.column) for e in errs] == [(1, 7)]
    assert "end of the line" in errs[0].message


def test_invalid_metadata_json_reports_column():
    body = 'a.jpg\nb.jpg\nhttps://x.io/v {"a": 1 "b": 2}'
    errs = errors_of(body)
    assert len(errs) == 1
    e = errs[0]
    assert (e.line, e.column) == (3, body.splitlines()[2].index('"b"') + 1)
    assert str(e) == f"line 3, col {e.column}: metadata is not valid JSON: Expecting ',' delimiter"
    assert e.source_line == 'https://x.io/v {"a": 1 "b": 2}'


@pytest.mark.parametrize("bad", ["{'title': 'x'}", '{"a": NaN}', '{"a": Infinity}', '{"a": }', '{"a" 1}'])
def test_invalid_metadata_variants(bad):
    errs = errors_of("a.jpg " + bad)
    assert len(errs) == 1 and "metadata is not valid JSON" in errs[0].message


def test_metadata_without_source():
    errs = errors_of('{"title": "x"}')
    assert errs[0].line == 1 and "without a source" in errs[0].message


def test_metadata_is_not_interpolated():
    s = one('{d}/x.jpg {"note": "{not_a_name}", "n": "{{"}', {"d": "dir"})
    assert s.target == "dir/x.jpg"
    assert s.metadata == {"note": "{not_a_name}", "n": "{{"}


# --------------------------------------------------------------------------- interpolation


def test_interpolation_forms():
    ns = {
        "name": "shots",
        "obj": SimpleNamespace(attr="attrdir"),
        "d": {"k": "keyed", "k}": "weird"},
        "n": 3,
        "items": [1, 2, 3],
    }
    assert one("{name}/*.jpg", ns).target == "shots/*.jpg"
    assert one("{obj.attr}/a.png", ns).target == "attrdir/a.png"
    assert one("{d['k']}/a.png", ns).target == "keyed/a.png"
    assert one("{d['k}']}/a.png", ns).target == "weird/a.png"
    assert one("img_{n + 1}.jpg", ns).target == "img_4.jpg"
    assert one("{[i * 2 for i in items][n - 1]}.jpg", ns).target == "6.jpg"
    assert one("https://cdn.io/{name}/{n}.png", ns).target == "https://cdn.io/shots/3.png"
    assert one('"{name} via x/#1.jpg"', ns).target == "shots via x/#1.jpg"


def test_interpolated_value_inserted_as_text_not_reparsed():
    ns = {"p": "dir with {braces} # and via s3"}
    s = one("{p}/a.jpg", ns)
    assert (s.kind, s.target, s.connection) == ("file", "dir with {braces} # and via s3/a.jpg", None)


def test_interpolated_scheme_is_classified():
    assert one("{u}", {"u": "https://x.io/v.mp4"}).kind == "url"
    s = one("{b} via {c}", {"b": "s3://bkt/pre", "c": "conn_9"})
    assert (s.kind, s.target, s.connection) == ("s3", "s3://bkt/pre", "conn_9")


def test_connection_interpolation_bare_and_quoted():
    ns = {"env": "prod", "c": "conn_7"}
    assert one("s3://b/p via {c}", ns).connection == "conn_7"
    assert one('s3://b/p via "S3 {env}"', ns).connection == "S3 prod"
    assert one('s3://b/p via "Team {{A}}"', ns).connection == "Team {A}"
    body = 's3://b/p via "S3 {nope}"'
    errs = errors_of(body, ns)
    assert (errs[0].column, errs[0].message) == (body.index("nope") + 1, "name 'nope' is not defined (in {nope})")


def test_literal_braces():
    assert one("data/{{raw}}/x.jpg").target == "data/{raw}/x.jpg"
    assert one('"a {{b}} c.jpg"').target == "a {b} c.jpg"


def test_namespace_is_not_mutated():
    ns = {"x": "a"}
    one("{x}.jpg", ns)
    assert ns == {"x": "a"}


def test_undefined_name_reports_line_and_column():
    body = "ok.jpg\n  data/{nope}/x.jpg"
    errs = errors_of(body, {})
    assert [(e.line, e.column) for e in errs] == [(2, body.splitlines()[1].index("nope") + 1)]
    assert "name 'nope' is not defined" in errs[0].message
    errs = errors_of("{ok + missing}.jpg", {"ok": "a"})
    assert errs[0].column == "{ok + missing}".index("missing") + 1


def test_undefined_name_without_namespace():
    errs = errors_of("{x}/a.jpg")
    assert (errs[0].line, errs[0].column) == (1, 2)


@pytest.mark.parametrize(
    "body,fragment",
    [
        ("{}.jpg", "empty expression"),
        ("{1 +}.jpg", "invalid expression"),
        ("{d['missing']}.jpg", "KeyError"),
        ("{obj.nope}.jpg", "AttributeError"),
        ("{1/0}.jpg", "ZeroDivisionError"),
        ("a{.jpg", "unclosed '{'"),
        ("a}.jpg", "single '}'"),
    ],
)
def test_interpolation_errors(body, fragment):
    errs = errors_of(body, {"d": {}, "obj": object()})
    assert len(errs) == 1 and fragment in errs[0].message
    assert 1 <= errs[0].column <= len(body) + 1


def test_str_failure_is_reported():
    class Bad:
        def __str__(self):
            raise RuntimeError("boom")

    errs = errors_of("{b}.jpg", {"b": Bad()})
    assert "boom" in errs[0].message


# --------------------------------------------------------------------------- via / kinds errors


@pytest.mark.parametrize(
    "body,fragment,col",
    [
        ("s3://bucket/prefix", "need a connection", None),
        ("gdrive://0AHx", "need a connection", None),
        ("a.jpg via conn_1", "'via' only applies", 7),
        ("https://x.io/a.png via conn_1", "'via' only applies", 20),
        ("s3://b via", "needs a connection name or id", 8),
        ("s3://b via Production S3", "must be double-quoted", 12),
        ('s3://b via "Prod" extra', "unexpected text after", 18),
        ('s3://b via "unterminated', "unterminated quoted string", 12),
        ("ftp://host/file", "unsupported source scheme 'ftp://'", 1),
        ("s3:///prefix via c", "needs a bucket", 1),
        ("gdrive:// via c", "needs a folder or file id", 1),
        ("https:///nohost", "no host", 1),
        ("file://otherhost/x", "must be local", 1),
        ("via conn", "missing source", 1),
    ],
)
def test_source_errors(body, fragment, col):
    errs = errors_of(body)
    assert len(errs) == 1
    assert fragment in errs[0].message
    if col is not None:
        assert errs[0].column == col
    if "unsupported" in fragment:
        for kind in ("http", "s3://", "gdrive://", "local"):
            assert kind in errs[0].message


def test_all_errors_collected_in_order():
    body = "\n".join(
        [
            "good.jpg",
            "s3://bucket/x",  # 2: missing via
            "a.jpg via c",  # 3: via on a file
            'https://x.io/a {"a": 1,}',  # 4: bad JSON
            "{missing}/x",  # 5: undefined name
            "ftp://x/y",  # 6: unsupported
            "fine.png # ok",
            'bad.jpg {"a": Infinity} ',  # 8
        ]
    )
    with pytest.raises(IngestSyntaxError) as info:
        parse_body(body, {})
    errs = info.value.errors
    assert [e.line for e in errs] == [2, 3, 4, 5, 6, 8]
    text = str(info.value)
    assert text.startswith("6 errors in %%ingest body")
    for e in errs:
        assert f"line {e.line}, col {e.column}: {e.message}" in text
        assert e.source_line == body.split("\n")[e.line - 1]
    assert isinstance(info.value, ValueError)


def test_several_errors_on_one_line_are_all_reported():
    errs = errors_of('{a}/{b}.jpg {"x": 1 2}', {})
    assert [e.message.split(" (")[0] for e in errs] == [
        "name 'a' is not defined",
        "name 'b' is not defined",
        "metadata is not valid JSON: Expecting ',' delimiter",
    ]
    assert [e.column for e in errs] == sorted(e.column for e in errs)


# --------------------------------------------------------------------------- properties


def _check_result(body: str, ns=None) -> None:
    n = len(split_lines(body))
    try:
        lines = parse_body(body, ns)
    except IngestSyntaxError as exc:
        assert exc.errors, "IngestSyntaxError without errors"
        for e in exc.errors:
            assert 1 <= e.line <= n
            assert 1 <= e.column <= len(split_lines(body)[e.line - 1]) + 1
            assert e.message
        str(exc)
        return
    for l in lines:
        assert 1 <= l.line <= n
        assert l.kind in ("file", "url", "s3", "gdrive")
        assert isinstance(l.metadata, dict)
        assert (l.connection is not None) == (l.kind in ("s3", "gdrive"))


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_arbitrary_text_never_crashes(body):
    _check_result(body)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('{}"\'#\\ \t\n:/.*?,[]vias3gdrive{}"x1'))))
def test_arbitrary_grammar_characters_never_crash(body):
    _check_result(body, {"x": "v", "i": 1})


_word = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=8)
_path = st.lists(
    st.one_of(_word, st.sampled_from(["*", "**", "*.jpg", "{x}", "{{lit}}", "a#b", "{undefined}"])),
    min_size=1,
    max_size=4,
).map("/".join)
_meta_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6,
)
_meta = st.dictionaries(st.text(max_size=5), _meta_value, max_size=3).map(lambda d: json.dumps(d))
_conn = st.one_of(
    _word,
    st.text(alphabet=string.ascii_letters + ' "\\#', max_size=8).map(
        lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    ),
)
_source = st.one_of(
    _path,
    _word.map(lambda w: f"https://example.com/{w}"),
    st.tuples(_word, _path, _conn).map(lambda t: f"s3://{t[0]}/{t[1]} via {t[2]}"),
    st.tuples(_word, _conn).map(lambda t: f"gdrive://{t[0]} via {t[1]}"),
    st.sampled_from(["ftp://x/y", "s3://b", "a.jpg via c", '{"a": 1}', "{", "}", '"unterminated']),
)
_line = st.one_of(
    st.just(""),
    st.just("# comment"),
    st.tuples(
        _source,
        st.one_of(st.just(""), _meta.map(lambda m: "  " + m), st.sampled_from([' {"a": 1', " {'a': 1}", " {x}"])),
        st.one_of(st.just(""), st.just("  # trailing")),
    ).map("".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_line, max_size=8).map("\n".join))
def test_grammar_aware_bodies_never_crash(body):
    _check_result(body, {"x": "interp"})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_word, _meta_value.filter(lambda v: True)), max_size=5))
def test_valid_bodies_round_trip(entries):
    body = "\n".join(f"https://example.com/{w}  {json.dumps({'v': v})}" for w, v in entries)
    lines = parse_body(body)
    assert [(l.line, l.target, l.metadata) for l in lines] == [
        (i + 1, f"https://example.com/{w}", {"v": v}) for i, (w, v) in enumerate(entries)
    ]
