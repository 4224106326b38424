"""Presigned uploads: PUT served by the local server, confirm, duplicates, traversal."""

from __future__ import annotations

import hashlib
import urllib.parse

import httpx
import pytest

from tests.local.localhelpers import assert_error, b64, png_bytes, wait_task


def create_upload(env, **body):
    body.setdefault("filename", "notes.txt")
    body.setdefault("content_type", "text/plain")
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def put(url: str, data, content_type: str = "text/plain", **headers) -> httpx.Response:
    return httpx.put(url, content=data, headers={"Content-Type": content_type, **headers}, timeout=60)


def test_upload_flow_creates_object(env, local_server):
    data = b"line one\nline two\n"
    sha = hashlib.sha256(data).hexdigest()
    up = create_upload(
        env,
        file_size_bytes=len(data),
        file_hash=sha,
        metadata={"campaign": "c1"},
        object_metadata={"title": "Notes"},
        blob_property="file",
    )
    assert up["upload_id"].startswith("upl_") and up["status"] == "PENDING"
    assert up["presigned_url"].startswith(local_server.upload_url + "/_local/uploads/" + up["upload_id"])
    assert local_server.upload_url != local_server.base_url  # an S3-like target of its own
    for f in (
        "bucket_id",
        "filename",
        "content_type",
        "presigned_url_expiration",
        "s3_key",
        "created_at",
        "expires_at",
        "create_object_on_confirm",
    ):
        assert up[f] is not None
    assert up["is_duplicate"] is False
    # nothing uploaded yet -> confirm refuses, upload stays pending
    assert_error(
        env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm", json={}),
        400,
        "no file has been uploaded",
    )
    r = put(up["presigned_url"], data)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm",
        json={"etag": r.headers["ETag"], "file_size_bytes": len(data)},
    )
    assert r.status_code == 200, r.text
    conf = r.json()
    assert conf["status"] == "COMPLETED" and conf["file_hash"] == sha and conf["file_size_bytes"] == len(data)
    assert conf["object_id"].startswith("obj_")
    obj = env.c.get(f"/v1/buckets/{env.bucket_id}/objects/{conf['object_id']}").json()
    assert obj["metadata"] == {"title": "Notes"}
    assert obj["blobs"][0]["property"] == "file"
    assert obj["blobs"][0]["details"]["hash"] == sha and obj["blobs"][0]["details"]["filename"] == "notes.txt"
    got = env.c.get(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}").json()
    assert got["status"] == "COMPLETED" and got["object_id"] == conf["object_id"] and got["etag"] == conf["etag"]
    assert got["metadata"] == {"campaign": "c1"}
    assert env.c.get(f"/v1/buckets/{env.bucket_id}").json()["total_size_bytes"] == len(data)
    # confirming twice is harmless
    again = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm", json={}).json()
    assert again["object_id"] == conf["object_id"]
    # the object can be processed like any other
    _, task = env.submit([conf["object_id"]])
    task = wait_task(env.c, task["task_id"])
    assert task["status"] == "COMPLETED" and task["outputs"] == [conf["object_id"]]
    blob = env.c.get(f"/v1/buckets/{env.bucket_id}/objects/{conf['object_id']}").json()["blobs"][0]
    assert blob["properties"]["features"] == {"lines": 2, "words": 4, "chars": len(data)}
    assert blob["details"]["hash"] == sha


def test_upload_without_object_then_reference(env):
    png = png_bytes((3, 4))
    up = create_upload(env, filename="pic.png", content_type="image/png", create_object_on_confirm=False)
    assert put(up["presigned_url"], png, "image/png").status_code == 200
    conf = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm", json={}).json()
    assert conf["object_id"] is None
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/objects",
        json={"blobs": [{"property": "image", "type": "image", "upload_id": up["upload_id"]}]},
    )
    assert r.status_code == 200, r.text
    _, task = env.submit([r.json()["object_id"]])
    task = wait_task(env.c, task["task_id"])
    assert task["status"] == "COMPLETED" and task["outputs"] == [r.json()["object_id"]]
    blob = env.c.get(f"/v1/buckets/{env.bucket_id}/objects/{r.json()['object_id']}").json()["blobs"][0]
    assert blob["details"]["filename"] == "pic.png" and blob["details"]["mime_type"] == "image/png"
    assert (blob["properties"]["features"]["width"], blob["properties"]["features"]["height"]) == (3, 4)
    # an unconfirmed upload cannot be referenced
    up2 = create_upload(env, filename="b.txt")
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/objects",
        json={"blobs": [{"property": "file", "type": "text", "upload_id": up2["upload_id"]}]},
    )
    assert_error(r, 400, "confirm")


def _tamper(url: str, **changes) -> str:
    parts = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(parts.query))
    q.update(changes)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))


def test_presigned_url_tampering_and_expiry(env, local_server):
    up = create_upload(env, presigned_url_expiration=60)
    url = up["presigned_url"]
    sig = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["signature"]
    bad_sig = ("0" if sig[0] != "0" else "1") + sig[1:]
    assert_error(put(_tamper(url, signature=bad_sig), b"x"), 403, "signature")
    exp = int(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["expires"])
    assert_error(put(_tamper(url, expires=str(exp + 3600)), b"x"), 403, "signature")
    assert_error(put(url.replace("?", "x?", 1).replace(up["upload_id"] + "x", up["upload_id"][:-1] + "z"), b"x"), 403)
    other = create_upload(env, filename="other.txt")
    assert_error(put(url.replace(up["upload_id"], other["upload_id"]), b"x"), 403, "signature")
    assert_error(put(url.split("?")[0], b"x"), 403)
    # nothing was stored by the refused PUTs
    assert_error(env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm", json={}), 400)
    # expiry: move the server clock past expires
    local_server.advance_clock(61)
    assert_error(put(url, b"x"), 403, "expired")
    fresh = create_upload(env, filename="fresh.txt")
    assert put(fresh["presigned_url"], b"ok").status_code == 200


def test_presigned_put_content_type_and_size(env):
    up = create_upload(env, filename="data.bin", content_type="application/octet-stream", file_size_bytes=10)
    url = up["presigned_url"]
    assert_error(put(url, b"0123456789", "text/plain"), 403, "content-type")
    assert_error(put(url, b"0123456789", ""), 403)
    assert_error(put(url, b"01234", "application/octet-stream"), 400, "file_size_bytes")
    assert_error(put(url, b"0123456789ABC", "application/octet-stream"), 400, "file_size_bytes")

    def chunks():  # no Content-Length: size is checked while streaming
        yield b"0123456789"
        yield b"extra"

    assert_error(put(url, chunks(), "application/octet-stream"), 400, "file_size_bytes")
    r = put(url, b"0123456789", "application/octet-stream")
    assert r.status_code == 200


def test_confirm_mismatches_keep_upload_unconfirmed(env):
    data = b"hello world"
    up = create_upload(env, file_hash=hashlib.sha256(b"something else").hexdigest())
    etag = put(up["presigned_url"], data).headers["ETag"]
    path = f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm"
    assert_error(env.c.post(path, json={}), 400, "sha256")
    assert_error(env.c.post(path, json={"file_size_bytes": 999}), 400, "999")
    assert env.c.get(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}").json()["status"] == "PENDING"
    up2 = create_upload(env, filename="b.txt")
    put(up2["presigned_url"], data)
    path2 = f"/v1/buckets/{env.bucket_id}/uploads/{up2['upload_id']}/confirm"
    assert_error(env.c.post(path2, json={"etag": '"0000"'}), 400, "etag")
    assert_error(env.c.post(path2, json={"file_size_bytes": len(data) + 1}), 400, "does not match")
    assert env.c.get(f"/v1/buckets/{env.bucket_id}/uploads/{up2['upload_id']}").json()["status"] == "PENDING"
    assert env.c.get(f"/v1/buckets/{env.bucket_id}").json()["object_count"] == 0
    ok = env.c.post(path2, json={"etag": etag, "file_size_bytes": len(data)})
    assert ok.status_code == 200 and ok.json()["status"] == "COMPLETED"


def test_skip_duplicates(env):
    data = b"duplicate me"
    sha = hashlib.sha256(data).hexdigest()
    up = create_upload(env, file_hash=sha)
    put(up["presigned_url"], data)
    conf = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm", json={}).json()
    dup = create_upload(env, filename="again.txt", file_hash=sha)
    assert dup["is_duplicate"] is True and dup["presigned_url"] is None
    assert dup["existing_object_id"] == conf["object_id"] and dup["duplicate_of_upload_id"] == up["upload_id"]
    # skip_duplicates=false asks for a new upload anyway
    new = create_upload(env, filename="again.txt", file_hash=sha, skip_duplicates=False)
    assert new["is_duplicate"] is False and new["presigned_url"]
    # an object created from inline data also counts as existing content
    other = b"inline content"
    obj = env.obj(property="file", data={"base64": b64(other), "filename": "i.txt"})
    dup2 = create_upload(env, filename="i2.txt", file_hash=hashlib.sha256(other).hexdigest())
    assert dup2["is_duplicate"] is True and dup2["existing_object_id"] == obj["object_id"]
    assert dup2["presigned_url"] is None


def test_batch_create_finds_every_kind_of_duplicate_at_once(env):
    known = b"confirmed before"
    up = create_upload(env, file_hash=hashlib.sha256(known).hexdigest())
    put(up["presigned_url"], known)
    conf = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm", json={}).json()
    inline = b"an inline object"
    obj = env.obj(property="file", data={"base64": b64(inline), "filename": "i.txt"})
    fresh = hashlib.sha256(b"never seen").hexdigest()
    uploads = [
        {"filename": "a.txt", "content_type": "text/plain", "file_hash": hashlib.sha256(known).hexdigest()},
        {"filename": "b.txt", "content_type": "text/plain", "file_hash": hashlib.sha256(inline).hexdigest()},
        {"filename": "c.txt", "content_type": "text/plain", "file_hash": fresh},
        {"filename": "d.txt", "content_type": "text/plain", "file_hash": fresh},  # same new content twice
        {
            "filename": "e.txt",
            "content_type": "text/plain",
            "file_hash": hashlib.sha256(known).hexdigest(),
            "skip_duplicates": False,
        },
        {"filename": "f.txt", "content_type": "text/plain"},
    ]
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/batch", json={"uploads": uploads})
    assert r.status_code == 200, r.text
    a, b, c, d, e, f = r.json()["uploads"]
    assert a["is_duplicate"] and a["duplicate_of_upload_id"] == up["upload_id"]
    assert a["existing_object_id"] == conf["object_id"] and a["presigned_url"] is None
    assert b["is_duplicate"] and b["status"] == "SKIPPED" and b["existing_object_id"] == obj["object_id"]
    for new in (c, d, e, f):
        assert new["is_duplicate"] is False and new["status"] == "PENDING" and new["presigned_url"]
    assert len({c["upload_id"], d["upload_id"], e["upload_id"], f["upload_id"]}) == 4


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "a/../../b.txt",
        "/etc/passwd",
        "..\\..\\win.ini",
        "dir\\file.txt",
        "nul\x00byte.txt",
        "C:\\x.txt",
        "..",
    ],
)
def test_traversal_filenames_rejected(env, name):
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads", json={"filename": name, "content_type": "text/plain"})
    assert r.status_code == 422, r.text
    detail = r.json()["error"]["details"]["errors"][0]
    assert detail["loc"][-1] == "filename"
    assert any(word in detail["msg"] for word in ("..", "absolute", "backslash", "NUL"))
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/objects",
        json={"blobs": [{"property": "file", "type": "text", "data": {"base64": b64(b"x"), "filename": name}}]},
    )
    assert r.status_code == 400 and "filename" in r.json()["error"]["message"]
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads/batch",
        json={
            "uploads": [
                {"filename": "ok.txt", "content_type": "text/plain"},
                {"filename": name, "content_type": "text/plain"},
            ]
        },
    )
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["loc"][:3] == ["body", "uploads", 1]
    assert env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/list", json={}).json()["results"] == []


def test_key_prefix_traversal_rejected(env):
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/objects",
        json={"key_prefix": "a/../../etc", "blobs": [{"property": "file", "type": "text", "data": "x"}]},
    )
    assert r.status_code == 422 and ".." in r.json()["error"]["details"]["errors"][0]["msg"]


def test_batch_create_and_batch_confirm(env):
    files = {"a.txt": b"alpha", "b.txt": b"beta beta", "c.txt": b"gamma"}
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads/batch",
        json={
            "uploads": [{"filename": n, "content_type": "text/plain", "metadata": {"n": n}} for n in files],
            "shared_metadata": {"run": "r1", "n": "shared"},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 3
    ups = body["uploads"]
    assert ups[0]["metadata"] == {"run": "r1", "n": "a.txt"}
    confirmations = []
    for up in ups:
        data = files[up["filename"]]
        etag = put(up["presigned_url"], data).headers["ETag"]
        if up["filename"] == "c.txt":
            etag = '"wrong"'
        confirmations.append({"upload_id": up["upload_id"], "etag": etag, "file_size_bytes": len(data)})
    confirmations.append({"upload_id": "upl_doesnotexist"})
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/confirm/batch", json={"confirmations": confirmations})
    assert r.status_code == 200, r.text
    resp = r.json()
    assert resp["confirmations_count"] == 4 and resp["task"]["task_type"] == "api_buckets_uploads_batch_confirm"
    task = wait_task(env.c, resp["task_id"])
    assert task["status"] == "COMPLETED_WITH_ERRORS"
    assert task["additional_data"] == {"namespace_id": env.namespace_id, "bucket_id": env.bucket_id}
    # each upload's outcome is on the upload, read the contract's way: uploads/list filtered by upload_id
    ids = [u["upload_id"] for u in ups]
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads/list",
        json={"filters": {"AND": [{"field": "upload_id", "operator": "in", "value": ids}]}},
    )
    assert r.status_code == 200, r.text
    got = {u["upload_id"]: u for u in r.json()["results"]}
    assert set(got) == set(ids)
    done = [got[i] for i in ids[:2]]
    assert [u["status"] for u in done] == ["COMPLETED", "COMPLETED"] and all(u["object_id"] for u in done)
    assert all(u["task_id"] == task["task_id"] and "created object" in u["message"] for u in done)
    assert task["outputs"] == [u["object_id"] for u in done]  # object ids, nothing per file
    bad = got[ids[2]]
    assert bad["status"] == "FAILED" and bad["object_id"] is None and "etag" in bad["message"]
    assert env.c.get(f"/v1/buckets/{env.bucket_id}/uploads/{ids[2]}").json() == bad
    assert env.c.get(f"/v1/buckets/{env.bucket_id}").json()["object_count"] == 2


def test_batch_confirm_spanning_transaction_groups(env):
    """A batch confirm works through its list a group per transaction: outcomes
    stay per upload and in order across group boundaries, content repeated
    inside one group becomes one object, and the objects are the ones a single
    confirm makes."""
    from mixpeek_magics.local.worker import CONFIRM_GROUP

    n = CONFIRM_GROUP * 2 + 3
    bodies = [(f"f{i:02d}.txt", b"same bytes" if i in (4, 5) else f"file number {i}".encode()) for i in range(n)]
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads/batch",
        json={
            "uploads": [
                {
                    "filename": name,
                    "content_type": "text/plain",
                    "file_size_bytes": len(data),
                    "object_metadata": {"i": i},
                }
                for i, (name, data) in enumerate(bodies)
            ]
        },
    )
    assert r.status_code == 200, r.text
    ups = r.json()["uploads"]
    confirmations = []
    for up, (_, data) in zip(ups, bodies):
        etag = put(up["presigned_url"], data).headers["ETag"]
        confirmations.append({"upload_id": up["upload_id"], "etag": etag, "file_size_bytes": len(data)})
    bad = CONFIRM_GROUP + 1  # a failure in the middle of the second group
    confirmations[bad]["file_size_bytes"] += 1
    confirmations.append(dict(confirmations[0]))  # the same upload twice: the second is a no-op
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/confirm/batch", json={"confirmations": confirmations})
    assert r.status_code == 200, r.text
    task = wait_task(env.c, r.json()["task_id"])
    assert task["status"] == "COMPLETED_WITH_ERRORS", task
    # the outcomes, per upload, from the uploads themselves (pages of at most 100, ListUploadsRequest's limit)
    upload_ids = [u["upload_id"] for u in ups]
    r = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads/list",
        json={"limit": 100, "filters": {"AND": [{"field": "upload_id", "operator": "in", "value": upload_ids}]}},
    )
    assert r.status_code == 200, r.text
    got = {u["upload_id"]: u for u in r.json()["results"]}
    outcomes = [got[i] for i in upload_ids]
    assert [u["filename"] for u in outcomes] == [name for name, _ in bodies]
    assert [u["status"] for u in outcomes] == ["FAILED" if i == bad else "COMPLETED" for i in range(n)]
    assert outcomes[bad]["object_id"] is None and "file_size_bytes" in outcomes[bad]["message"]
    assert outcomes[5]["object_id"] == outcomes[4]["object_id"]  # same bytes: one object
    ids = {u["object_id"] for u in outcomes if u["status"] == "COMPLETED"}
    assert len(ids) == n - 2
    # the outputs are the object ids, one per confirmation that made or found one (the repeat included)
    assert task["outputs"] == [u["object_id"] for u in outcomes if u["object_id"]] + [outcomes[0]["object_id"]]
    assert env.c.get(f"/v1/buckets/{env.bucket_id}").json()["object_count"] == n - 2
    # the bad one can be confirmed again, with the right size
    good = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads/{ups[bad]['upload_id']}/confirm",
        json={"file_size_bytes": len(bodies[bad][1])},
    ).json()
    assert good["status"] == "COMPLETED" and good["object_id"]
    batch_obj = env.c.get(f"/v1/buckets/{env.bucket_id}/objects/{outcomes[7]['object_id']}").json()
    single_obj = env.c.get(f"/v1/buckets/{env.bucket_id}/objects/{good['object_id']}").json()
    assert sorted(batch_obj) == sorted(single_obj)
    assert batch_obj["metadata"] == {"i": 7} and single_obj["metadata"] == {"i": bad}
    assert sorted(batch_obj["blobs"][0]) == sorted(single_obj["blobs"][0])
    assert batch_obj["blobs"][0]["details"] == {
        "filename": "f07.txt",
        "size_bytes": len(bodies[7][1]),
        "mime_type": "text/plain",
        "hash": hashlib.sha256(bodies[7][1]).hexdigest(),
    }
    upload = env.c.get(f"/v1/buckets/{env.bucket_id}/uploads/{ups[7]['upload_id']}").json()
    assert upload["status"] == "COMPLETED" and upload["object_id"] == outcomes[7]["object_id"]


def test_list_get_delete_uploads(env):
    ids = [create_upload(env, filename=f"f{i}.txt", metadata={"i": i})["upload_id"] for i in range(5)]
    page = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads/list", params={"limit": 2, "include_total": True}, json={}
    ).json()
    assert page["pagination"]["total"] == 5 and len(page["results"]) == 2
    assert page["results"][0]["upload_id"] == ids[-1]  # newest first
    assert page["stats"]["uploads_by_status"] == {"PENDING": 2}
    seen = [u["upload_id"] for u in page["results"]]
    cursor = page["pagination"]["next_cursor"]
    while cursor:
        p = env.c.post(
            f"/v1/buckets/{env.bucket_id}/uploads/list", params={"limit": 2, "cursor": cursor}, json={}
        ).json()
        seen += [u["upload_id"] for u in p["results"]]
        cursor = p["pagination"]["next_cursor"]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/list", json={"filters": {"metadata.i": 3}}).json()
    assert [u["upload_id"] for u in r["results"]] == [ids[3]]
    r = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/list", json={"search": "F1.TXT"}).json()
    assert [u["upload_id"] for u in r["results"]] == [ids[1]]
    assert env.c.delete(f"/v1/buckets/{env.bucket_id}/uploads/{ids[0]}").status_code == 204
    assert env.c.get(f"/v1/buckets/{env.bucket_id}/uploads/{ids[0]}").json()["status"] == "CANCELED"
    assert_error(env.c.get(f"/v1/buckets/{env.bucket_id}/uploads/upl_nope"), 404)


def test_large_upload_is_streamed(env, tmp_path):
    """64 MiB sent in 1 MiB chunks; hashes prove every byte arrived in order."""
    chunk = bytes(range(256)) * 4096
    n = 64
    md5, sha = hashlib.md5(), hashlib.sha256()
    for _ in range(n):
        md5.update(chunk)
        sha.update(chunk)
    up = create_upload(env, filename="big.bin", content_type="application/octet-stream", file_size_bytes=len(chunk) * n)

    def gen():
        for _ in range(n):
            yield chunk

    r = put(up["presigned_url"], gen(), "application/octet-stream", **{"Content-Length": str(len(chunk) * n)})
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == f'"{md5.hexdigest()}"'
    conf = env.c.post(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}/confirm", json={}).json()
    assert conf["file_hash"] == sha.hexdigest() and conf["file_size_bytes"] == len(chunk) * n


def test_presigned_put_refusals_and_query_reading(env, local_server):
    """The upload endpoint's answers: signature, type and size refusals, then the
    PUT; query parameters read unquoted, the last value winning."""
    data = b"same bytes either way\n"
    up = create_upload(env, file_size_bytes=len(data))
    url = up["presigned_url"]
    assert url.startswith(local_server.upload_url)
    bad = url.replace("signature=", "signature=x")
    answers = [
        (r.status_code, r.headers.get("ETag"), r.json() if r.content else None)
        for r in (put(bad, data), put(url, data, "image/png"), put(url, data + b"!"), put(url, data))
    ]
    assert [a[0] for a in answers] == [403, 403, 400, 200]
    assert (
        answers[0][2]["error"]["type"] == "SignatureDoesNotMatch" and answers[2][2]["error"]["type"] == "SizeMismatch"
    )
    assert answers[3][1] == f'"{hashlib.md5(data).hexdigest()}"'
    up = create_upload(env, file_size_bytes=len(data))
    url = up["presigned_url"]
    sig = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["signature"][0]
    quoted = url.replace(f"signature={sig}", f"signature=%{ord(sig[0]):02x}{sig[1:]}")
    assert put(url + "&signature=forged", data).status_code == 403
    assert put(quoted + "&", data).status_code == 200
    up = create_upload(env, file_size_bytes=len(data))
    url = up["presigned_url"]
    sig = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["signature"][0]
    assert put(url.replace(f"signature={sig}", "signature=forged") + f"&signature={sig}", data).status_code == 200
    # a path with more segments, or none, is not an upload
    r = put(url.replace("/_local/uploads/", "/_local/uploads/x/"), data)
    assert r.status_code == 404
    r = put(url.replace(f"/_local/uploads/{up['upload_id']}", "/_local/uploads/"), data)
    assert r.status_code == 404
