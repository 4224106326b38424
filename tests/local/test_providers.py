"""Storage providers: FileFilters, S3 against moto's server, Drive against the fixture server."""

from __future__ import annotations

import hashlib
import math
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

from mixpeek_magics.local.providers import (
    FilterError,
    ProviderError,
    ProviderSettings,
    SourceFile,
    apply_filters,
    make_provider,
    matches,
    parse_filters,
    rejection_reason,
    test_connection,
)
from tests.fixtures import blackhole_port
from tests.fixtures.drive_server import FOLDER_MIME, DriveFixture, make_service_account_info
from tests.fixtures.moto_s3 import closed_port, moto_s3_server, nested_keys

UTC = timezone.utc


def sf(
    key: str, size: int | None = 10, modified: datetime | None = None, mime: str | None = None, rel: str | None = None
) -> SourceFile:
    name = key.rsplit("/", 1)[-1]
    return SourceFile(
        key=key,
        name=name,
        size=size,
        etag_or_md5="e",
        modified=modified,
        mime_type=mime,
        relative_path=rel if rel is not None else key,
    )


# ---------------------------------------------------------------- filters
class TestFilters:
    def test_empty_filters_pass_everything(self):
        assert matches(sf("a/b.bin", size=None), None)
        assert matches(sf("a/b.bin"), {})
        assert parse_filters(None).is_empty

    def test_include_patterns_match_name_or_path(self):
        f = {"include_patterns": ["*.mp4", "*.mov"]}
        assert matches(sf("videos/2024/a.mp4"), f)
        assert matches(sf("b.mov"), f)
        assert not matches(sf("videos/a.mp4.txt"), f)
        assert rejection_reason(sf("x.png"), f) == "include_patterns"

    def test_exclude_patterns_with_directories(self):
        f = {"exclude_patterns": ["*/drafts/*", "*_temp.*", ".DS_Store"]}
        assert not matches(sf("root/drafts/x.png"), f)
        assert not matches(sf("drafts/x.png", rel="drafts/x.png"), f)  # drafts at the top of the listed root
        assert not matches(sf("a/b/clip_temp.mp4"), f)
        assert not matches(sf("a/.DS_Store"), f)
        assert matches(sf("a/final/x.png"), f)
        assert rejection_reason(sf("a/.DS_Store"), f) == "exclude_patterns"

    def test_include_and_exclude_combine(self):
        f = {"include_patterns": ["*.png"], "exclude_patterns": ["tmp/*"]}
        assert matches(sf("data/img/a.png", rel="img/a.png"), f)
        assert not matches(sf("data/tmp/a.png", rel="tmp/a.png"), f)
        assert not matches(sf("data/img/a.jpg", rel="img/a.jpg"), f)

    def test_patterns_are_case_sensitive_and_support_classes(self):
        assert not matches(sf("A.PNG"), {"include_patterns": ["*.png"]})
        assert matches(sf("f3.png"), {"include_patterns": ["f[0-4].png"]})
        assert not matches(sf("f7.png"), {"include_patterns": ["f[0-4].png"]})
        assert matches(sf("f7.png"), {"include_patterns": ["f?.png"]})

    def test_extensions_case_insensitive_dot_optional(self):
        f = {"extensions": [".MP4", "jpg"]}
        assert matches(sf("a/CLIP.mp4"), f)
        assert matches(sf("a/x.JPG"), f)
        assert not matches(sf("a/x.jpeg"), f)

    def test_size_bounds_inclusive_and_unknown_size_fails(self):
        f = {"min_size_bytes": 10, "max_size_bytes": 20}
        assert matches(sf("a", size=10), f) and matches(sf("a", size=20), f)
        assert rejection_reason(sf("a", size=9), f) == "min_size_bytes"
        assert rejection_reason(sf("a", size=21), f) == "max_size_bytes"
        assert rejection_reason(sf("a", size=None), f) == "min_size_bytes"
        assert matches(sf("a", size=0), {"max_size_bytes": 0})

    def test_modified_window_strict_and_timezones(self):
        t = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
        f = {"modified_after": "2024-06-01T12:00:00Z", "modified_before": "2024-06-02T00:00:00+00:00"}
        assert not matches(sf("a", modified=t), f)  # strictly after
        assert matches(sf("a", modified=t + timedelta(seconds=1)), f)
        assert not matches(sf("a", modified=datetime(2024, 6, 2, tzinfo=UTC)), f)
        # same instant in another zone
        cet = timezone(timedelta(hours=2))
        assert matches(sf("a", modified=datetime(2024, 6, 1, 14, 0, 1, tzinfo=cet)), f)
        # naive filter value = UTC
        assert matches(sf("a", modified=t + timedelta(hours=1)), {"modified_after": "2024-06-01T12:30:00"})
        assert rejection_reason(sf("a", modified=None), f) == "modified_after"

    def test_mime_types_exact_wildcard_and_guessed(self):
        f = {"mime_types": ["video/*", "image/jpeg"]}
        assert matches(sf("a.bin", mime="video/mp4"), f)
        assert matches(sf("a.bin", mime="IMAGE/JPEG; charset=x"), f)
        assert not matches(sf("a.bin", mime="image/png"), f)
        assert matches(sf("clip.mov"), f)  # guessed from name
        assert rejection_reason(sf("noext"), f) == "mime_types"

    def test_validation_errors_name_the_field(self):
        with pytest.raises(FilterError, match="include_pattern") as ei:
            parse_filters({"include_pattern": ["*.png"]})  # typo must not sync everything
        assert ei.value.field == "include_pattern"
        with pytest.raises(FilterError, match="min_size_bytes"):
            parse_filters({"min_size_bytes": -1})
        with pytest.raises(FilterError, match="min_size_bytes"):
            parse_filters({"min_size_bytes": 50, "max_size_bytes": 10})
        with pytest.raises(FilterError, match="modified_after"):
            parse_filters({"modified_after": "last tuesday"})
        with pytest.raises(FilterError, match=r"include_patterns\[1\]"):
            parse_filters({"include_patterns": ["*.png", 3]})
        with pytest.raises(FilterError, match="max_size_bytes"):
            parse_filters({"max_size_bytes": "big"})
        assert isinstance(FilterError("x", "y"), ValueError)

    def test_parse_accepts_objects_and_round_trips(self):
        class Model:
            def model_dump(self):
                return {"include_patterns": ["*.png"], "min_size_bytes": 1}

        ff = parse_filters(Model())
        assert ff.include_patterns == ("*.png",) and ff.min_size_bytes == 1
        assert parse_filters(ff.to_dict()) == ff
        assert parse_filters(ff) is ff

    def test_apply_filters_is_lazy_and_validates_up_front(self):
        consumed = []

        def gen():
            for i in range(1000):
                consumed.append(i)
                yield sf(f"f{i}.png" if i % 2 else f"f{i}.txt")

        it = apply_filters(gen(), {"include_patterns": ["*.png"]})
        first = [next(it) for _ in range(3)]
        assert [f.key for f in first] == ["f1.png", "f3.png", "f5.png"]
        assert len(consumed) == 6
        with pytest.raises(FilterError):
            apply_filters(gen(), {"bogus": 1})  # raised before iterating


# ---------------------------------------------------------------- S3 (moto)
@pytest.fixture(scope="module")
def s3():
    with moto_s3_server(auth=True) as server:
        server.create_bucket("media")
        keys = nested_keys(300, prefix="data/")
        server.bodies = server.put_objects("media", keys)
        server.put_objects("media", {"data2/other.png": b"not under data/", "top.txt": b"top"})
        yield server


def _s3(server, settings=None, **overrides):
    return make_provider("s3", server.provider_config(**overrides), settings=settings)


class TestS3:
    def test_good_credentials_pass(self, s3):
        p = _s3(s3)
        p.test("media")  # bucket from the path
        p.test()  # no bucket: ListBuckets
        _s3(s3, bucket="media").test()  # bucket from the config
        assert test_connection(p, "media/data") == {
            "success": True,
            "message": "Connection test succeeded",
            "details": {"result": "success"},
        }

    def test_unknown_access_key_is_bad_credentials(self, s3):
        p = _s3(
            s3,
            credentials={
                "type": "access_key",
                "access_key_id": "AKIAUNKNOWNKEY000000",
                "secret_access_key": s3.secret_access_key,
            },
        )
        with pytest.raises(ProviderError) as ei:
            p.test("media")
        err = ei.value
        assert err.kind == "bad_credentials" and err.provider_code == "InvalidAccessKeyId"
        assert "the access key was rejected" in str(err)
        assert s3.secret_access_key not in str(err) + repr(err.to_dict())

    def test_wrong_secret_is_bad_credentials(self, s3):
        p = _s3(
            s3, credentials={"type": "access_key", "access_key_id": s3.access_key_id, "secret_access_key": "x" * 40}
        )
        res = test_connection(p, "media")
        assert res["success"] is False
        assert res["details"]["kind"] == "bad_credentials"
        assert res["details"]["provider_code"] == "SignatureDoesNotMatch"
        assert res["details"]["error_code"] == "AUTH_FAILED"
        assert res["message"].startswith("Authentication failed:")

    def test_valid_key_without_permission_is_access_denied(self, s3):
        p = _s3(
            s3,
            credentials={
                "type": "access_key",
                "access_key_id": s3.denied_access_key_id,
                "secret_access_key": s3.denied_secret_access_key,
            },
        )
        with pytest.raises(ProviderError) as ei:
            p.test("media")
        assert ei.value.kind == "access_denied" and "media" in str(ei.value)

    def test_missing_bucket(self, s3):
        with pytest.raises(ProviderError) as ei:
            _s3(s3).test("no-such-bucket/x")
        assert ei.value.kind == "no_such_bucket"
        assert "no-such-bucket" in str(ei.value)
        with pytest.raises(ProviderError) as ei:
            list(_s3(s3).iter_files("no-such-bucket"))
        assert ei.value.kind == "no_such_bucket"

    def test_closed_port_is_unreachable_quickly(self, s3):
        endpoint = f"http://127.0.0.1:{closed_port()}"
        t0 = time.monotonic()
        with pytest.raises(ProviderError) as ei:
            _s3(s3, endpoint_url=endpoint).test("media")
        assert time.monotonic() - t0 < 5
        assert ei.value.kind == "unreachable"
        assert f"cannot reach {endpoint}" in str(ei.value)

    def test_connect_timeout_is_unreachable_quickly(self, s3):
        with blackhole_port() as port:
            t0 = time.monotonic()
            res = test_connection(
                _s3(s3, ProviderSettings(connect_timeout=0.5, max_attempts=2), endpoint_url=f"http://127.0.0.1:{port}"),
                "media",
            )
            elapsed = time.monotonic() - t0
        assert res["success"] is False and res["details"]["kind"] == "unreachable", res
        assert elapsed < 4

    def test_use_ssl_false_with_schemeless_endpoint(self, s3):
        p = _s3(s3, endpoint_url=s3.host_port, use_ssl=False)
        assert p.endpoint_url == s3.endpoint_url
        p.test("media")
        assert len(list(p.iter_files("media/data/d0"))) > 0
        # use_ssl=True on the same plain-HTTP port: TLS cannot be negotiated
        with pytest.raises(ProviderError) as ei:
            _s3(s3, endpoint_url=s3.host_port, use_ssl=True).test("media")
        assert ei.value.kind == "unreachable"

    def test_lists_300_nested_objects_lazily_across_pages(self, s3):
        p = _s3(s3, ProviderSettings(s3_page_size=25))
        calls = []
        p.client.meta.events.register("after-call.s3.ListObjectsV2", lambda **kw: calls.append(1))
        it = p.iter_files("media/data")
        first = [next(it) for _ in range(10)]
        assert len(calls) == 1  # lazy: one page fetched so far
        rest = list(it)
        files = first + rest
        assert len(calls) == math.ceil(300 / 25)
        assert sorted(f.key for f in files) == sorted(nested_keys(300, prefix="data/"))
        assert all(f.bucket == "media" and f.relative_path == f.key[len("data/") :] for f in files)
        assert all(f.modified is not None and f.modified.tzinfo is not None for f in files)
        assert not any(f.key.startswith("data2/") for f in files)  # prefix behaves like a folder
        by_key = {f.key: f for f in files}
        for key in ("data/f0000.png", "data/d0/d1/f0002.txt"):
            body = s3.bodies[key]
            assert by_key[key].size == len(body)
            assert by_key[key].etag_or_md5 == hashlib.md5(body).hexdigest()
        assert by_key["data/f0000.png"].uri == "s3://media/data/f0000.png"

    def test_first_listing_page_is_short_then_pages_are_full(self, s3):
        # a sync's first batch starts before a full page of 1,000 keys is listed
        p = _s3(s3)
        sizes = []
        p.client.meta.events.register(
            "after-call.s3.ListObjectsV2", lambda parsed, **kw: sizes.append(len(parsed.get("Contents", [])))
        )
        files = list(p.iter_files("media/data"))
        assert len(files) == 300 and sizes == [100, 200]

    def test_listing_with_filters(self, s3):
        p = _s3(s3, ProviderSettings(s3_page_size=40))
        filters = {"include_patterns": ["*.png", "*.jpg"], "exclude_patterns": ["d1/*"], "min_size_bytes": 30}
        got = sorted(f.key for f in p.iter_files("media/data", filters))
        expected = sorted(
            k
            for k in nested_keys(300, prefix="data/")
            if (k.endswith(".png") or k.endswith(".jpg"))
            and not k[len("data/") :].startswith("d1/")
            and len(s3.bodies[k]) >= 30
        )
        assert got == expected and 0 < len(got) < 300

    def test_bad_filters_raise_before_listing(self, s3):
        with pytest.raises(FilterError):
            _s3(s3).iter_files("media/data", {"min_size": 3})

    def test_stream_and_open_bytes(self, s3):
        p = _s3(s3)
        big = bytes(range(256)) * 12_000  # ~3 MB
        s3.put_object("media", "blobs/big.bin", big)
        (f,) = list(p.iter_files("media/blobs"))
        chunks = list(p.iter_bytes(f, chunk_size=256 * 1024))
        assert len(chunks) > 1 and b"".join(chunks) == big
        with p.open(f) as fh:
            head = fh.read(10)
            rest = fh.read()
        assert head + rest == big
        assert p.read_bytes(f) == big
        ghost = SourceFile(
            key="blobs/ghost.bin", name="ghost.bin", size=1, etag_or_md5=None, modified=None, bucket="media"
        )
        with pytest.raises(ProviderError) as ei:
            p.read_bytes(ghost)
        assert ei.value.kind == "not_found"

    def test_single_object_path_and_bucket_root(self, s3):
        p = _s3(s3)
        assert [f.key for f in p.iter_files("media/top.txt")] == ["top.txt"]
        assert [f.key for f in p.iter_files("s3://media/data/d0/d1/f0002.txt")] == ["data/d0/d1/f0002.txt"]
        assert len(list(p.iter_files("media", {"include_patterns": ["top.*"]}))) == 1

    def test_list_folders(self, s3):
        p = _s3(s3)
        buckets = p.list_folders("/")
        assert {"id": "media", "name": "media", "path": "/media", "mime_type": "application/x-directory"} in buckets
        names = sorted(f["name"] for f in p.list_folders("media/data"))
        assert names == ["d0", "d1", "d2", "d3", "d4"]
        assert all(
            f["id"].startswith("media/data/") and f["path"] == "/" + f["id"] for f in p.list_folders("media/data")
        )

    def test_iam_role_assumes_role_via_sts(self, s3):
        role = {"type": "iam_role", "role_arn": s3.role_arn, "external_id": s3.external_id}
        settings = ProviderSettings(sts_access_key_id=s3.access_key_id, sts_secret_access_key=s3.secret_access_key)
        p = _s3(s3, settings, credentials=role)
        p.test("media")
        creds = p.client._request_signer._credentials.get_frozen_credentials()
        assert creds.access_key != s3.access_key_id and creds.token  # temporary STS credentials
        assert len(list(p.iter_files("media/data/d2"))) > 0
        bad = ProviderSettings(sts_access_key_id="AKIAUNKNOWNKEY000000", sts_secret_access_key="y" * 40)
        with pytest.raises(ProviderError) as ei:
            _s3(s3, bad, credentials=role).test("media")
        assert ei.value.kind == "bad_credentials" and s3.role_arn in str(ei.value)

    def test_tigris_uses_the_s3_protocol(self, s3):
        cfg = {"credentials": s3.credentials(), "endpoint_url": s3.endpoint_url}
        p = make_provider("tigris", cfg)
        assert p.region == "auto" and p.provider_type == "tigris"
        p.test("media")
        assert (
            make_provider("tigris", {"credentials": s3.credentials()}).endpoint_url == "https://fly.storage.tigris.dev"
        )
        with pytest.raises(ProviderError) as ei:
            make_provider(
                "tigris",
                {
                    "credentials": {
                        "type": "iam_role",
                        "role_arn": "arn:aws:iam::123456789012:role/x",
                        "external_id": "mixpeek-x1",
                    }
                },
            )
        assert ei.value.kind == "invalid_config"

    @pytest.mark.parametrize(
        "cfg,needle",
        [
            ({}, "credentials is required"),
            (
                {"credentials": {"type": "access_key", "access_key_id": "AKIAX"}, "region": "us-east-1"},
                "secret_access_key",
            ),
            (
                {
                    "credentials": {"type": "iam_role", "role_arn": "arn:aws:iam::123456789012:role/r"},
                    "region": "us-east-1",
                },
                "external_id",
            ),
            ({"credentials": {"type": "password"}, "region": "us-east-1"}, "not supported"),
            (
                {"credentials": {"type": "access_key", "access_key_id": "A" * 20, "secret_access_key": "s" * 40}},
                "region",
            ),
            (
                {
                    "credentials": {"type": "access_key", "access_key_id": "A" * 20, "secret_access_key": "s" * 40},
                    "region": "us-east-1",
                    "endpoint_url": "ftp://x",
                },
                "endpoint_url",
            ),
        ],
    )
    def test_invalid_config(self, cfg, needle):
        with pytest.raises(ProviderError) as ei:
            make_provider("s3", cfg)
        assert ei.value.kind == "invalid_config" and needle in str(ei.value)

    def test_unsupported_provider_type(self):
        with pytest.raises(ProviderError, match="snowflake") as ei:
            make_provider("snowflake", {})
        assert ei.value.kind == "invalid_config"

    def test_repr_hides_secrets(self, s3):
        p = _s3(s3)
        assert s3.secret_access_key not in repr(p) and "access_key" in repr(p)


# ---------------------------------------------------------------- Google Drive (fixture)
@pytest.fixture(scope="module")
def drive():
    with DriveFixture() as fx:
        fx.sa = fx.add_service_account()
        fx.oauth = fx.add_oauth_client()
        m = fx.add_folder("root", "Marketing")
        c = fx.add_folder(m, "2024 Campaigns")
        a = fx.add_folder(c, "Assets")
        fx.add_folder("root", "Empty")
        fx.expected = {}
        for i in range(9):
            fx.expected[f"/Marketing/m{i}.png"] = fx.add_file(m, f"m{i}.png", b"m" * (i + 1), "image/png")
        for i in range(6):
            fx.expected[f"/Marketing/2024 Campaigns/c{i}.mp4"] = fx.add_file(c, f"c{i}.mp4", b"c" * 50, "video/mp4")
        for i in range(5):
            fx.expected[f"/Marketing/2024 Campaigns/Assets/a{i}.txt"] = fx.add_file(
                a, f"a{i}.txt", f"asset {i}".encode(), "text/plain"
            )
        fx.trash(fx.add_file(a, "deleted.txt", b"gone", "text/plain"))
        fx.add_file(c, "Plan", b"", "application/vnd.google-apps.document")
        fx.marketing, fx.campaigns, fx.assets = m, c, a
        yield fx


def _gd(drive, creds=None, page_size=4, **cfg):
    settings = ProviderSettings(
        google_drive_api_root=drive.api_root, drive_page_size=page_size, connect_timeout=2, overall_test_timeout=5
    )
    return make_provider("google_drive", {"credentials": creds or drive.sa, **cfg}, settings=settings)


class TestDrive:
    def test_service_account_gets_a_token(self, drive):
        n = len(drive.token_grants)
        p = _gd(drive)
        p.test()
        grant = drive.token_grants[n]
        assert grant["grant"] == "jwt-bearer"
        assert grant["principal"] == drive.sa["client_email"]
        assert grant["scope"] == "https://www.googleapis.com/auth/drive.readonly"
        assert grant["sub"] is None

    def test_impersonation_sets_jwt_subject(self, drive):
        n = len(drive.token_grants)
        _gd(drive, impersonate_user="admin@example.com").test()
        assert drive.token_grants[n]["sub"] == "admin@example.com"

    def test_oauth_gets_a_token(self, drive):
        n = len(drive.token_grants)
        p = _gd(drive, drive.oauth)
        assert test_connection(p)["success"] is True
        assert drive.token_grants[n]["grant"] == "refresh_token"
        assert drive.token_grants[n]["principal"] == drive.oauth["client_id"]

    @pytest.mark.parametrize("change", ["refresh_token", "client_secret", "client_id"])
    def test_oauth_bad_credentials(self, drive, change):
        creds = dict(drive.oauth, **{change: "wrong-" + change})
        with pytest.raises(ProviderError) as ei:
            _gd(drive, creds).test()
        assert ei.value.kind == "bad_credentials"
        assert "wrong-" not in str(ei.value) and drive.oauth["client_secret"] not in str(ei.value)

    def test_unregistered_service_account_key_is_rejected(self, drive):
        stranger = make_service_account_info(drive.token_uri)  # valid key, unknown to the "Google" side
        res = test_connection(_gd(drive, stranger))
        assert res["success"] is False and res["details"]["kind"] == "bad_credentials"
        assert "invalid_grant" in res["message"]

    def test_key_signed_by_another_private_key_is_rejected(self, drive):
        other = make_service_account_info(drive.token_uri)
        forged = dict(drive.sa, private_key=other["private_key"])  # registered kid, wrong signature
        with pytest.raises(ProviderError, match="Invalid JWT Signature") as ei:
            _gd(drive, forged).test()
        assert ei.value.kind == "bad_credentials"

    def test_recursive_listing_with_pagination(self, drive):
        p = _gd(drive, page_size=4)
        before = len(drive.list_calls())
        files = list(p.iter_files("/Marketing"))
        calls = drive.list_calls()[before:]
        assert {f.key: f.file_id for f in files} == drive.expected
        assert len(files) == 20  # trashed file and Google Doc are left out
        listing_calls = [c for c in calls if "name =" not in c.get("q", "")]
        assert any("pageToken" in c for c in listing_calls)  # pagination used
        assert len(listing_calls) == math.ceil(10 / 4) + math.ceil(8 / 4) + math.ceil(5 / 4)
        assert all(c["pageSize"] == "4" and c["supportsAllDrives"] == "true" for c in listing_calls)
        f = next(f for f in files if f.name == "a3.txt")
        assert f.relative_path == "2024 Campaigns/Assets/a3.txt"
        assert f.size == len(b"asset 3") and f.etag_or_md5 == hashlib.md5(b"asset 3").hexdigest()
        assert f.mime_type == "text/plain" and f.modified is not None and f.modified.tzinfo is not None
        assert f.uri == f"gdrive://{f.file_id}"

    def test_listing_is_lazy(self, drive):
        p = _gd(drive, page_size=4)
        before = len(drive.list_calls())
        it = p.iter_files(drive.marketing)
        next(it)
        assert len(drive.list_calls()) - before == 1

    def test_folder_id_path_and_filters(self, drive):
        p = _gd(drive)
        by_id = sorted(f.relative_path for f in p.iter_files(drive.campaigns))
        by_path = sorted(f.relative_path for f in p.iter_files("/Marketing/2024 Campaigns"))
        assert by_id == by_path and len(by_id) == 11
        only = sorted(
            f.name
            for f in p.iter_files("/Marketing", {"include_patterns": ["*/Assets/*"], "exclude_patterns": ["a0.*"]})
        )
        assert only == ["a1.txt", "a2.txt", "a3.txt", "a4.txt"]
        videos = list(p.iter_files("/", {"mime_types": ["video/*"], "min_size_bytes": 50}))
        assert sorted(f.name for f in videos) == [f"c{i}.mp4" for i in range(6)]

    def test_missing_folder_is_not_found(self, drive):
        p = _gd(drive)
        with pytest.raises(ProviderError) as ei:
            list(p.iter_files("/Marketing/Nope"))
        assert ei.value.kind == "not_found" and "Nope" in str(ei.value)
        assert test_connection(p, "/Marketing/Nope")["details"]["kind"] == "not_found"
        with pytest.raises(ProviderError) as ei:
            list(p.iter_files("1fxDOESNOTEXIST"))
        assert ei.value.kind == "not_found"

    def test_download_streams_bytes(self, drive):
        big = bytes(range(256)) * 10_000
        fid = drive.add_file(drive.assets, "zz-big.bin", big, "application/octet-stream")
        p = _gd(drive)
        f = next(f for f in p.iter_files("/Marketing/2024 Campaigns/Assets") if f.file_id == fid)
        chunks = list(p.iter_bytes(f, chunk_size=64 * 1024))
        assert len(chunks) > 1 and b"".join(chunks) == big
        with p.open(f) as fh:
            assert fh.read(5) + fh.read() == big
        downloads = [q for m, path, q in drive.requests if path.endswith(fid) and q.get("alt") == "media"]
        assert downloads and all(q["supportsAllDrives"] == "true" for q in downloads)

    def test_modified_file_changes_md5_and_time(self, drive):
        fid = drive.add_file(drive.assets, "zz-change.txt", b"v1", "text/plain")
        p = _gd(drive)

        def get():
            return next(f for f in p.iter_files(drive.assets) if f.file_id == fid)

        before = get()
        drive.update_file(fid, b"version two")
        after = get()
        assert after.etag_or_md5 == hashlib.md5(b"version two").hexdigest() != before.etag_or_md5
        assert after.modified > before.modified and after.size == 11
        assert after.version_token != before.version_token
        assert p.read_bytes(after) == b"version two"

    def test_list_folders(self, drive):
        p = _gd(drive)
        root = p.list_folders("/")
        assert {"id": drive.marketing, "name": "Marketing", "path": "/Marketing", "mime_type": FOLDER_MIME} in root
        assert sorted(f["name"] for f in root) == ["Empty", "Marketing"]
        sub = p.list_folders("/Marketing/2024 Campaigns")
        assert sub == [
            {"id": drive.assets, "name": "Assets", "path": "/Marketing/2024 Campaigns/Assets", "mime_type": FOLDER_MIME}
        ]
        assert p.list_folders("/Empty") == []

    def test_shared_drive(self, drive):
        d = drive.add_shared_drive("Team")
        folder = drive.add_folder(d, "Shared Stuff")
        drive.add_file(folder, "s.png", b"shared", "image/png")
        drive.add_file(d, "top.png", b"top", "image/png")
        p = _gd(drive, shared_drive_id=d)
        p.test()
        assert sorted(f.key for f in p.iter_files("/")) == ["/Shared Stuff/s.png", "/top.png"]
        assert [f["path"] for f in p.list_folders("/")] == ["/Shared Stuff"]
        calls = [c for c in drive.list_calls() if c.get("driveId") == d]
        assert calls and all(c["corpora"] == "drive" and c["includeItemsFromAllDrives"] == "true" for c in calls)
        # My Drive listing does not see the shared drive's items
        assert not any(f.name == "s.png" for f in _gd(drive).iter_files("/"))

    def test_expired_token_is_refreshed_transparently(self, drive):
        p = _gd(drive)
        p.test()
        n = len(drive.token_grants)
        drive.expire_all_tokens()
        assert len(list(p.iter_files("/Marketing/2024 Campaigns/Assets"))) >= 5
        assert len(drive.token_grants) == n + 1

    def test_transient_errors_are_retried(self, drive):
        p = _gd(drive)
        p.test()
        drive.fail_next(503, 1)
        assert len(list(p.iter_files(drive.assets))) >= 5
        drive.fail_next(500, 10)
        with pytest.raises(ProviderError) as ei:
            list(p.iter_files(drive.assets))
        assert ei.value.kind == "other" and ei.value.status_code == 500
        drive._faults.clear()

    def test_google_doc_is_not_downloadable(self, drive):
        doc = next(i for i in drive.items.values() if i.mimeType == "application/vnd.google-apps.document")
        fake = SourceFile(key="/Plan", name="Plan", size=None, etag_or_md5=None, modified=None, file_id=doc.id)
        with pytest.raises(ProviderError, match="no binary content"):
            _gd(drive).read_bytes(fake)

    # -- bad keys / config
    def test_bad_private_key_is_a_clear_error(self, drive):
        bad = dict(drive.sa, private_key="-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        with pytest.raises(ProviderError) as ei:
            _gd(drive, bad)
        assert ei.value.kind == "invalid_config"
        assert "private_key is not a valid PEM private key" in str(ei.value)
        assert "not a key" not in str(ei.value)

    def test_escaped_newlines_in_private_key_are_accepted(self, drive):
        flat = dict(drive.sa, private_key=drive.sa["private_key"].replace("\n", "\\n"))
        _gd(drive, flat).test()

    def test_json_string_credentials_are_accepted(self, drive):
        import json

        _gd(drive, json.dumps(drive.sa)).test()

    @pytest.mark.parametrize("drop", ["private_key", "client_email", "project_id", "private_key_id", "client_id"])
    def test_missing_key_fields_are_named(self, drive, drop):
        creds = {k: v for k, v in drive.sa.items() if k != drop}
        with pytest.raises(ProviderError, match=f"missing {drop}") as ei:
            _gd(drive, creds)
        assert ei.value.kind == "invalid_config"

    def test_other_invalid_configs(self, drive):
        for creds, needle in [
            ({"type": "oauth", "client_id": "x"}, "client_secret"),
            ({"type": "api_key", "key": "x"}, "not supported"),
            ("{not json", "not valid JSON"),
            (dict(drive.sa, type="authorized_user"), "service_account"),
            (dict(drive.sa, token_uri="file:///etc/passwd"), "token_uri"),
        ]:
            with pytest.raises(ProviderError, match=needle) as ei:
                _gd(drive, creds)
            assert ei.value.kind == "invalid_config"
        with pytest.raises(ProviderError, match="impersonate_user"):
            _gd(drive, drive.oauth, impersonate_user="a@b.c")

    # -- offline / unreachable
    def test_real_google_offline_is_unreachable_fast(self, drive, monkeypatch):
        real = socket.getaddrinfo

        def offline(host, *a, **kw):  # no network: nothing but localhost resolves
            if host in ("127.0.0.1", "localhost", "::1"):
                return real(host, *a, **kw)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        monkeypatch.setattr(socket, "getaddrinfo", offline)
        sa = make_service_account_info("https://oauth2.googleapis.com/token")
        p = make_provider("google_drive", {"credentials": sa})  # default API root and timeouts
        assert p.api_root == "https://www.googleapis.com/drive/v3"
        t0 = time.monotonic()
        res = test_connection(p)
        assert time.monotonic() - t0 < 3
        assert res["success"] is False and res["details"]["kind"] == "unreachable"
        assert res["message"] == "Network error: cannot reach Google (oauth2.googleapis.com): check the network"
        oauth = make_provider(
            "google_drive", {"credentials": {k: v for k, v in drive.oauth.items() if k != "token_uri"}}
        )
        with pytest.raises(ProviderError, match="oauth2.googleapis.com") as ei:
            oauth.test()
        assert ei.value.kind == "unreachable"

    def test_hanging_dns_is_cut_by_the_deadline(self, drive, monkeypatch):
        real = socket.getaddrinfo

        def hanging(host, *a, **kw):
            if host in ("127.0.0.1", "localhost", "::1"):
                return real(host, *a, **kw)
            time.sleep(4)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

        monkeypatch.setattr(socket, "getaddrinfo", hanging)
        sa = make_service_account_info("https://oauth2.googleapis.com/token")
        p = make_provider("google_drive", {"credentials": sa}, settings={"overall_test_timeout": 1.0})
        t0 = time.monotonic()
        with pytest.raises(ProviderError) as ei:
            p.test()
        assert time.monotonic() - t0 < 2.5
        assert ei.value.kind == "unreachable" and "oauth2.googleapis.com" in str(ei.value)

    def test_token_endpoint_connect_timeout(self, drive):
        with blackhole_port() as port:
            sa = make_service_account_info(f"http://127.0.0.1:{port}/token")
            p = make_provider(
                "google_drive",
                {"credentials": sa},
                settings={"connect_timeout": 0.5, "google_drive_api_root": drive.api_root},
            )
            t0 = time.monotonic()
            with pytest.raises(ProviderError) as ei:
                p.test()
            assert time.monotonic() - t0 < 3
        assert ei.value.kind == "unreachable" and "127.0.0.1" in str(ei.value)

    def test_api_root_unreachable(self, drive):
        p = make_provider(
            "google_drive",
            {"credentials": drive.sa},
            settings={"google_drive_api_root": f"http://127.0.0.1:{closed_port()}/drive/v3"},
        )
        with pytest.raises(ProviderError) as ei:
            p.test()
        assert ei.value.kind == "unreachable"

    def test_secrets_never_in_errors_or_repr(self, drive):
        p = _gd(drive, drive.oauth)
        assert drive.oauth["client_secret"] not in repr(p) and drive.oauth["refresh_token"] not in repr(p)
        bad = dict(drive.oauth, refresh_token="1//0-leaky-refresh-token")
        res = test_connection(_gd(drive, bad))
        assert "leaky" not in str(res) and drive.oauth["client_secret"] not in str(res)
