"""Collections, documents and retrievers: the client against the local server over HTTP."""

from __future__ import annotations

import io
import math
from pathlib import Path

import httpx
import pytest

from mixpeek_magics.client import errors
from mixpeek_magics.client.resources.retrievers import attribute_filter_stage, feature_search_stage
from mixpeek_magics.ingest import bulk_upload
from tests.search.conftest import IMAGES, TEXTS, assert_contract_clean

UNIQUE_WORDS = {"harbour.txt": "lighthouse", "zebra.md": "zebra", "recipe.txt": "whisk", "meeting.csv": "budget"}


def _bucket(client, name: str = "media"):
    return client.buckets.create(name, {"text": {"type": "text"}, "image": {"type": "image"}})


def _ingest(client, bucket: str, paths: list[Path], metadata_for=None):
    result = bulk_upload(client, bucket, paths)
    assert result.failures == [], result
    task = client.tasks.wait(result.task_id, timeout=60)
    assert str(task.status) in ("COMPLETED", "COMPLETED_WITH_ERRORS"), task
    return result


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_extractor_catalogue(client, local_server):
    catalogue = {e.feature_extractor_id: e for e in client.collections.extractors()}
    assert {"text_extractor_v1", "image_extractor_v1", "multimodal_extractor_v1"} <= set(catalogue)
    text = client.collections.extractor("text_extractor_v1")
    assert text.feature_extractor_name == "text_extractor" and text.version == "v1"
    assert text.feature_uris == ["mixpeek://text_extractor@v1/multilingual_e5_large_instruct_v1"]
    assert "image" in catalogue["image_extractor_v1"].supported_input_types
    with pytest.raises(errors.NotFoundError):
        client.collections.extractor("clip_extractor_v9")
    assert_contract_clean(local_server)


def test_create_collection_is_checked(client, local_server):
    bucket = _bucket(client)
    col = client.collections.create("notes", bucket.bucket_id, "text_extractor", description="my notes")
    assert col.collection_id.startswith("col_") and col.collection_name == "notes"
    assert col.feature_extractor.feature_extractor_id == "text_extractor_v1"
    assert col.bucket_ids == [bucket.bucket_id] and col.document_count == 0
    assert col.feature_uris == ["mixpeek://text_extractor@v1/multilingual_e5_large_instruct_v1"]
    assert client.collections.get("notes").collection_id == col.collection_id
    assert client.collections.get(col.collection_id).collection_name == "notes"
    with pytest.raises(errors.ConflictError):
        client.collections.create("notes", bucket.bucket_id, "text_extractor")
    with pytest.raises(errors.BadRequestError, match="not available on the local server"):
        client.collections.create("x1", bucket.bucket_id, "clip_extractor")
    with pytest.raises(errors.NotFoundError):
        client.collections.create("x2", "bkt_missing", "text_extractor")
    with pytest.raises(errors.BadRequestError, match="input_mappings"):
        client.collections.create("x3", bucket.bucket_id, "text_extractor", input_mappings={"text": "nope"})
    with pytest.raises(errors.BadRequestError, match="image"):
        client.collections.create("x4", bucket.bucket_id, "image_extractor", input_mappings={"text": "text"})
    # the contract's strictness: an undeclared key is refused, and nothing is created
    raw = httpx.post(
        f"{local_server.base_url}/v1/collections",
        json={
            "collection_name": "x5",
            "source": {"type": "bucket", "bucket_ids": [bucket.bucket_id]},
            "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1"},
            "colour": "red",
        },
        headers={"Authorization": f"Bearer {local_server.api_key}", "X-Namespace": "search"},
    )
    assert raw.status_code == 422 and "colour" in raw.text, raw.text
    names = [c.collection_name for c in client.collections.iter()]
    assert names == ["notes"]
    page = client.collections.list(search="note")
    assert [c.collection_name for c in page] == ["notes"] and page.total == 1
    client.collections.delete("notes")
    with pytest.raises(errors.NotFoundError):
        client.collections.get("notes")
    assert_contract_clean(local_server)


def test_a_folder_becomes_searchable(client, local_server, media_folder):
    bucket = _bucket(client)
    col = client.collections.create("media", bucket.bucket_id, "multimodal_extractor")
    _ingest(client, "media", _files(media_folder))
    docs = list(client.documents.iter("media"))
    assert len(docs) == len(TEXTS) + len(IMAGES)
    by_name = {d.filename: d for d in docs}
    assert set(by_name) == set(TEXTS) | set(IMAGES)
    # a word that appears in one text file finds that file first
    for filename, word in UNIQUE_WORDS.items():
        results = client.retrievers.search("media", word, k=5)
        assert results.hits, word
        assert results.hits[0].filename == filename, (word, [(h.filename, h.score) for h in results.hits])
        assert results.hits[0].score > 0
    # an image finds itself first, with a perfect score, and other images after it
    for name in IMAGES:
        results = client.retrievers.search("media", image=media_folder / "pictures" / name, k=4)
        assert results.hits[0].filename == name, [(h.filename, h.score) for h in results.hits]
        assert math.isclose(results.hits[0].score, 1.0, abs_tol=1e-4)
        assert all(h.score < 0.999 for h in results.hits[1:])
        assert all(h.modality == "image" for h in results.hits)
    # text and images do not match each other in this stand-in: a text query returns texts only
    assert {h.modality for h in client.retrievers.search("media", "zebra savanna jeeps").hits} == {"text"}
    assert col.collection_id == docs[0].collection_id
    assert_contract_clean(local_server)


def test_documents_lineage_thumbnails_and_pages(client, local_server, media_folder):
    from PIL import Image

    bucket = _bucket(client)
    client.collections.create("media", bucket.bucket_id, "multimodal_extractor")
    _ingest(client, "media", _files(media_folder))
    objects = {o.object_id: o for o in client.objects.iter("media")}
    docs = list(client.documents.iter("media", limit=3))  # three pages and a bit, by cursor
    assert len(docs) == len(objects) == 8
    for d in docs:
        assert d.root_object_id in objects  # lineage back to the bucket's object
        assert d.lineage["root_bucket_id"] == bucket.bucket_id
        assert d.source_blob is not None and d.source_blob.role == "source"
    images = [d for d in docs if d.modality == "image"]
    texts = [d for d in docs if d.modality == "text"]
    assert len(images) == 4 and len(texts) == 4
    for d in texts:
        assert d.text == TEXTS[d.filename] and d.thumbnail_url is None
    one = images[0]
    assert one.fields["width"] == 96 and one.fields["height"] == 72
    assert one.fields["dominant_colors"][0]["hex"].startswith("#")
    got = client.documents.get("media", one.document_id, return_presigned_urls=True)
    assert got.document_id == one.document_id
    thumb_blob = next(b for b in got.document_blobs if b.role == "thumbnail")
    assert thumb_blob.presigned_url and thumb_blob.content_type == "image/jpeg"
    # the thumbnail URL is presigned: no API key needed; a changed signature is refused
    r = httpx.get(got.thumbnail_url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "JPEG" and max(img.size) <= 256 and img.size == (96, 72)
    assert httpx.get(got.thumbnail_url[:-4] + "0000").status_code == 403
    # filters on the documents' fields, and vectors on request
    page = client.documents.list(
        "media", {"AND": [{"field": "_internal.modality", "operator": "eq", "value": "image"}]}, include_total=True
    )
    assert page.total == 4 and {d.modality for d in page} == {"image"}
    with_vec = client.documents.get("media", texts[0].document_id, return_vectors=True)
    vec = with_vec.fields["vertex_multimodal_embedding"]
    assert len(vec) == 1200 and math.isclose(math.sqrt(sum(v * v for v in vec)), 1.0, rel_tol=1e-4)
    with pytest.raises(errors.NotFoundError):
        client.documents.get("media", "doc_missing")
    assert_contract_clean(local_server)


def test_retrievers_stages_and_statistics(client, local_server, media_folder):
    bucket = _bucket(client)
    col = client.collections.create("media", bucket.bucket_id, "multimodal_extractor")
    paths = _files(media_folder)
    # metadata rides along: "kind" tells notes from pictures
    result = bulk_upload(client, "media", [p for p in paths if p.parent.name == "notes"], metadata={"kind": "note"})
    client.tasks.wait(result.task_id, timeout=60)
    result = bulk_upload(
        client, "media", [p for p in paths if p.parent.name == "pictures"], metadata={"kind": "picture"}
    )
    client.tasks.wait(result.task_id, timeout=60)
    uri = col.feature_uris[0]
    ret = client.retrievers.create(
        "finder",
        [
            feature_search_stage(uri, text="{{INPUT.query}}", final_top_k=10),
            attribute_filter_stage("metadata.kind", "{{INPUT.kind}}"),
        ],
        ["media"],
        description="notes by words",
        input_schema={"query": {"type": "text", "required": True}, "kind": {"type": "string", "default": "note"}},
    )
    assert ret.retriever_id.startswith("ret_") and ret.collection_ids == [col.collection_id]
    assert [s.stage_name for s in ret.stages] == ["feature_search", "attribute_filter"]
    out = client.retrievers.execute("finder", {"query": "boats lighthouse harbour"})
    assert out.status == "completed" and out.hits[0].filename == "harbour.txt"
    assert all(h.metadata["kind"] == "note" for h in out.hits)
    stages = out.stage_statistics.stages
    assert list(stages) == ["feature_search", "attribute_filter"]
    assert stages["feature_search"].input_count == 8
    assert stages["attribute_filter"].input_count == stages["feature_search"].output_count
    assert stages["attribute_filter"].output_count == len(out.hits)
    none = client.retrievers.execute("finder", {"query": "boats", "kind": "picture"})
    assert none.hits == []
    with pytest.raises(errors.BadRequestError, match="query"):
        client.retrievers.execute("finder", {})
    assert client.retrievers.get("finder").retriever_id == ret.retriever_id
    assert [r.retriever_name for r in client.retrievers.list()] == ["finder"]
    assert client.collections.get("media").retriever_count == 1
    with pytest.raises(errors.ConflictError):
        client.retrievers.create("finder", [feature_search_stage(uri, text="x")], ["media"])
    with pytest.raises(errors.BadRequestError, match="not available on the local server"):
        client.retrievers.create(
            "llm",
            [{"stage_name": "llm", "stage_type": "apply", "config": {"stage_id": "llm_enrich", "parameters": {}}}],
            ["media"],
        )
    with pytest.raises(errors.BadRequestError, match="not a vector index"):
        client.retrievers.create(
            "wrong",
            [feature_search_stage("mixpeek://text_extractor@v1/multilingual_e5_large_instruct_v1", text="x")],
            ["media"],
        )
    # ad hoc: attribute_filter alone reads the collection's documents
    adhoc = client.retrievers.execute_adhoc([attribute_filter_stage("metadata.kind", "picture")], ["media"])
    assert sorted(h.filename for h in adhoc.hits) == sorted(IMAGES)
    assert adhoc.stage_statistics.stages["attribute_filter"].input_count == 8
    # by an existing document: the same document first
    doc = next(d for d in client.documents.iter("media") if d.filename == "zebra.md")
    similar = client.retrievers.execute_adhoc(
        [feature_search_stage(uri, document=(col.collection_id, doc.document_id))], ["media"]
    )
    assert similar.hits[0].document_id == doc.document_id
    client.retrievers.delete("finder")
    with pytest.raises(errors.NotFoundError):
        client.retrievers.get("finder")
    assert_contract_clean(local_server)


def test_text_and_image_collections_take_their_own_files(client, local_server, media_folder):
    bucket = _bucket(client)
    client.collections.create("texts", bucket.bucket_id, "text_extractor")
    client.collections.create("pictures", bucket.bucket_id, "image_extractor")
    broken = media_folder / "pictures" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    result = bulk_upload(client, "media", _files(media_folder))
    task = client.tasks.wait(result.task_id, timeout=60)
    assert str(task.status) == "COMPLETED_WITH_ERRORS"
    texts = list(client.documents.iter("texts"))
    pictures = list(client.documents.iter("pictures"))
    assert sorted(d.filename for d in texts) == sorted(TEXTS)
    assert sorted(d.filename for d in pictures) == sorted(IMAGES)  # the broken one made no document
    with pytest.raises(errors.BadRequestError, match="images only"):
        client.retrievers.search("pictures", "zebra")
    hit = client.retrievers.search("pictures", image=media_folder / "pictures" / "night-sky.png", k=1).hits[0]
    assert hit.filename == "night-sky.png"
    assert client.retrievers.search("texts", "whisk").hits[0].filename == "recipe.txt"
    assert_contract_clean(local_server)


def test_trigger_processes_objects_ingested_before_the_collection(client, local_server, media_folder):
    bucket = _bucket(client)
    _ingest(client, "media", _files(media_folder / "notes"))
    col = client.collections.create("late", bucket.bucket_id, "text_extractor")
    assert list(client.documents.iter("late")) == []
    trig = client.collections.trigger("late")
    assert trig.collection_id == col.collection_id and trig.object_count == len(TEXTS)
    task = client.tasks.wait(trig.task_id, timeout=60)
    assert str(task.status) == "COMPLETED" and task.task_type == "api_collections_trigger"
    assert sorted(d.filename for d in client.documents.iter("late")) == sorted(TEXTS)
    # again: the documents are replaced, not duplicated
    client.tasks.wait(client.collections.trigger("late").task_id, timeout=60)
    assert client.collections.get("late").document_count == len(TEXTS)
    assert_contract_clean(local_server)


async def test_async_client_searches_too(local_server, media_folder):
    from mixpeek_magics.client import AsyncMixpeek, Mixpeek

    sync = Mixpeek(api_key=local_server.api_key, base_url=local_server.base_url)
    sync.namespaces.create("search")
    c = sync.with_options(namespace="search")
    bucket = _bucket(c)
    c.collections.create("media", bucket.bucket_id, "multimodal_extractor")
    _ingest(c, "media", _files(media_folder))
    async with AsyncMixpeek(api_key=local_server.api_key, base_url=local_server.base_url, namespace="search") as ac:
        col = await ac.collections.get("media")
        assert col.document_count == 8
        hits = (await ac.retrievers.search("media", "zebra")).hits
        assert hits[0].filename == "zebra.md"
        docs = [d async for d in ac.documents.iter("media", limit=5)]
        assert len(docs) == 8
    sync.close()


def test_get_forms_of_the_list_routes(client, local_server, media_folder):
    import json

    bucket = _bucket(client)
    col = client.collections.create("media", bucket.bucket_id, "multimodal_extractor")
    _ingest(client, "media", _files(media_folder / "notes"))
    client.retrievers.create("r1", [feature_search_stage(col.feature_uris[0], text="{{INPUT.q}}")], ["media"])
    h = {"Authorization": f"Bearer {local_server.api_key}", "X-Namespace": "search"}
    base = local_server.base_url
    cols = httpx.get(f"{base}/v1/collections", params={"limit": 5, "include_total": "true"}, headers=h).json()
    assert [c["collection_name"] for c in cols["results"]] == ["media"] and cols["total_count"] == 1
    flt = json.dumps({"AND": [{"field": "text", "operator": "contains", "value": "savanna"}]})
    docs = httpx.get(f"{base}/v1/collections/media/documents", params={"filters": flt, "limit": 10}, headers=h).json()
    assert [d["document_blobs"][0]["filename"] for d in docs["results"]] == ["zebra.md"]
    assert "_internal" in docs["results"][0] and docs["total_documents"] == 1
    rets = httpx.get(f"{base}/v1/retrievers", headers=h).json()
    assert [r["retriever_name"] for r in rets["results"]] == ["r1"] and rets["total"] == 1
    assert httpx.get(f"{base}/v1/collections/media", headers={"Authorization": h["Authorization"]}).status_code == 400
    assert httpx.get(f"{base}/v1/collections/media", headers={"X-Namespace": "search"}).status_code == 401
    assert_contract_clean(local_server)
