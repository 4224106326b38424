"""Deleting a bucket leaves its collections and their documents usable (over HTTP).

The contract's bucket delete removes the bucket's own resources (objects, blobs, batches,
uploads); a collection is a resource of the namespace, deleted (with its documents) only by
its own delete, and a document keeps its lineage. So after a bucket is deleted, the documents
it produced are still listed, read, searched and shown; the collection only stops being fed
by that bucket, and triggering it processes the source buckets that are left.
"""

from __future__ import annotations

import httpx
import pytest

from mixpeek_magics.client import errors
from mixpeek_magics.ingest import bulk_upload
from tests.search.conftest import IMAGES, TEXTS, assert_contract_clean


def _ingest(client, bucket: str, paths) -> None:
    result = bulk_upload(client, bucket, sorted(paths))
    assert result.failures == [], result
    assert str(client.tasks.wait(result.task_id, timeout=60).status) == "COMPLETED"


def test_a_deleted_buckets_documents_stay_usable(client, local_server, media_folder, tmp_path):
    schema = {"text": {"type": "text"}, "image": {"type": "image"}}
    media = client.buckets.create("media", schema)
    extra = client.buckets.create("extra", schema)
    both = client.collections.create("both", [media.bucket_id, extra.bucket_id], "multimodal_extractor")
    only = client.collections.create("only-media", media.bucket_id, "multimodal_extractor")
    _ingest(client, "media", [p for p in media_folder.rglob("*") if p.is_file()])
    (tmp_path / "later").mkdir()
    first = tmp_path / "later" / "tide.txt"
    first.write_text("The tide tables say the ferry leaves at noon.")
    _ingest(client, "extra", [first])
    n_media = len(TEXTS) + len(IMAGES)
    assert client.collections.get("both").document_count == n_media + 1
    zebra = next(d for d in client.documents.iter("only-media") if d.filename == "zebra.md")
    circle = next(d for d in client.documents.iter("only-media") if d.filename == "red-circle.png")

    gone = client.buckets.delete("media")
    assert gone["object_count"] == n_media
    with pytest.raises(errors.NotFoundError):
        client.buckets.get("media")

    # the collections stay, with their documents and the source they were made with
    cols = {c.collection_name: c for c in client.collections.iter()}
    assert set(cols) == {"both", "only-media"}
    assert cols["only-media"].document_count == n_media and cols["both"].document_count == n_media + 1
    assert cols["both"].bucket_ids == [media.bucket_id, extra.bucket_id]
    # a document is read, listed and keeps its lineage to the deleted bucket's object
    got = client.documents.get("only-media", zebra.document_id)
    assert got.text == TEXTS["zebra.md"] and got.root_object_id == zebra.root_object_id
    assert got.lineage["root_bucket_id"] == media.bucket_id
    assert {d.filename for d in client.documents.iter("only-media")} == set(TEXTS) | set(IMAGES)
    # its thumbnail is still served (a fresh read signs a fresh URL)
    picture = client.documents.get("only-media", circle.document_id)
    r = httpx.get(picture.thumbnail_url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    # search by text, by image and by document still finds them
    assert client.retrievers.search("only-media", "savanna", k=3).hits[0].filename == "zebra.md"
    by_image = client.retrievers.search("both", image=media_folder / "pictures" / "red-circle.png", k=3)
    assert by_image.hits[0].root_object_id == circle.root_object_id  # "both" made its own document of it
    by_doc = client.retrievers.search("only-media", document_id=circle.document_id, k=2)
    assert by_doc.hits[0].document_id == circle.document_id

    # a trigger processes the source buckets that are left, and says so when none is
    trig = client.collections.trigger("both")
    assert trig.collection_id == both.collection_id
    assert trig.source_bucket_ids == [extra.bucket_id] and trig.object_count == 1
    assert str(client.tasks.wait(trig.task_id, timeout=30).status) == "COMPLETED"
    with pytest.raises(errors.NotFoundError, match=f"no source bucket left.*{media.bucket_id} deleted"):
        client.collections.trigger("only-media")
    with pytest.raises(errors.NotFoundError):
        client.collections.trigger("both", include_buckets=[media.bucket_id])

    # a new bucket of the same name is another bucket: the old collections do not read it
    again = client.buckets.create("media", schema)
    assert again.bucket_id != media.bucket_id
    second = tmp_path / "later" / "harbour-again.txt"
    second.write_text("Another note about the lighthouse keeper.")
    _ingest(client, "media", [second])
    assert client.collections.get("only-media").document_count == n_media
    # the bucket that is left still feeds its collection
    third = tmp_path / "later" / "orchard.txt"
    third.write_text("Apples ripen in the orchard by late September.")
    _ingest(client, "extra", [third])
    assert client.collections.get("both").document_count == n_media + 2
    assert client.retrievers.search("both", "orchard apples", k=1).hits[0].filename == "orchard.txt"

    # and a collection is deleted with its documents, its bucket gone or not
    client.collections.delete("only-media")
    with pytest.raises(errors.NotFoundError):
        client.documents.get("only-media", zebra.document_id)
    assert [c.collection_name for c in client.collections.iter()] == ["both"]
    assert client.documents.get("both", next(iter(client.documents.iter("both"))).document_id)
    # inside the server, the deleted bucket feeds no collection; the one left still feeds "both"
    sources = local_server.state.store.query("SELECT bucket_id, collection_id FROM collection_sources")
    assert sorted((r["bucket_id"], r["collection_id"]) for r in sources) == [(extra.bucket_id, both.collection_id)]
    assert only.collection_id not in {r["collection_id"] for r in sources}
    assert_contract_clean(local_server)
