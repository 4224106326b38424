"""%%ingest --collection, %mixpeek_search and %mixpeek_documents in a real IPython shell."""

from __future__ import annotations

import re

import pytest
from IPython.core.error import UsageError

from tests.search.conftest import IMAGES, TEXTS


def _ingest_cell(ip, folder, *extra: str) -> None:
    ip.user_ns["folder"] = str(folder)
    ip.run_cell_magic(
        "ingest",
        " ".join(["--bucket media --create-bucket --collection media -o res", *extra]),
        '{folder}/notes/  {"kind": "note"}\n{folder}/pictures/*.png  {"kind": "picture"}\n',
    )


def test_a_folder_becomes_searchable_in_two_cells(ip, media_folder, capsys):
    from mixpeek_magics.notebook.gallery import Gallery

    # cell 1: the folder into a bucket and a collection
    _ingest_cell(ip, media_folder)
    out = capsys.readouterr().out
    assert "Created collection 'media' (multimodal_extractor)" in out
    assert "Collection 'media': 8 documents written (8 in total)" in out
    res = ip.user_ns["res"]
    assert res.collections["media"]["documents_written"] == 8
    # cell 2: a word of one text file finds that file first
    gallery = ip.run_line_magic("mixpeek_search", "savanna --collection media")
    assert isinstance(gallery, Gallery)
    frame = gallery.frame
    assert frame.iloc[0]["filename"] == "zebra.md" and frame.iloc[0]["rank"] == 1
    assert frame.iloc[0]["metadata.kind"] == "note"
    assert "savanna" in frame.iloc[0]["snippet"]
    text = gallery.to_text()
    first_row = text.splitlines()[2]
    assert first_row.split()[:3] == ["1", f"{frame.iloc[0]['score']:.3f}", "zebra.md"], text
    # an image query returns the same image first
    for name in IMAGES:
        ip.run_line_magic("mixpeek_search", f"--image {media_folder}/pictures/{name} -c media -k 3 -o hits")
        hits = ip.user_ns["hits"]
        assert hits.iloc[0]["filename"] == name
        assert hits.iloc[0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert hits.iloc[0]["thumbnail"] is not None and hits.iloc[0]["width"] == 96


def test_search_filters_and_documents(ip, media_folder):
    _ingest_cell(ip, media_folder)
    ip.run_line_magic("mixpeek_search", "lighthouse gulls eggs sugar --collection media -k 10 -o hits")
    assert set(ip.user_ns["hits"]["filename"]) == {"harbour.txt", "recipe.txt"}
    ip.run_line_magic(
        "mixpeek_search", f"--image {media_folder}/pictures/red-circle.png -c media --filter kind=note -o hits"
    )
    assert len(ip.user_ns["hits"]) == 0  # an image matches no note
    stats = ip.user_ns["hits"].attrs["stage_statistics"]
    assert list(stats) == ["feature_search", "attribute_filter"] and stats["attribute_filter"]["output_count"] == 0
    ip.run_line_magic("mixpeek_documents", "media -o docs")
    docs = ip.user_ns["docs"]
    assert len(docs) == 8 and set(docs["filename"]) == set(TEXTS) | set(IMAGES)
    pictures = docs[docs["modality"] == "image"]
    assert pictures["thumbnail"].notna().all() and pictures["width"].eq(96).all()
    assert docs[docs["modality"] == "text"]["thumbnail"].isna().all()
    ip.run_line_magic("mixpeek_documents", "media --filter kind=note --no-thumbnails -o docs")
    assert sorted(ip.user_ns["docs"]["filename"]) == sorted(TEXTS)


def test_collection_reused_and_late_collection_processes_earlier_files(ip, media_folder, capsys):
    _ingest_cell(ip, media_folder)
    capsys.readouterr()
    _ingest_cell(ip, media_folder)  # again: nothing new, the collection is reused
    out = capsys.readouterr().out
    assert "Using collection 'media' (multimodal_extractor)" in out
    assert "Collection 'media': 0 documents written (8 in total)" in out
    # a new text collection on the same bucket: the files already there are processed for it
    ip.run_cell_magic(
        "ingest", "--bucket media --collection notes-only --extractor text_extractor -o res", f"{media_folder}/notes/\n"
    )
    out = capsys.readouterr().out
    assert "Created collection 'notes-only' (text_extractor)" in out
    assert "Collection 'notes-only': 4 documents written (4 in total)" in out
    ip.run_line_magic("mixpeek_search", "whisk --collection notes-only -o hits")
    assert ip.user_ns["hits"].iloc[0]["filename"] == "recipe.txt"


def test_usage_errors(ip, media_folder):
    from mixpeek_magics.notebook.magics.search import SearchError

    with pytest.raises(UsageError, match="--collection"):
        ip.run_line_magic("mixpeek_search", "zebra")
    with pytest.raises(UsageError, match="nothing to search"):
        ip.run_line_magic("mixpeek_search", "--collection media")
    with pytest.raises(UsageError, match="no such file"):
        ip.run_line_magic("mixpeek_search", "--image nowhere.png --collection media")
    with pytest.raises(UsageError, match="FIELD=VALUE"):
        ip.run_line_magic("mixpeek_search", "zebra -c media --filter kind")
    with pytest.raises(SearchError, match="not found"):
        ip.run_line_magic("mixpeek_search", "zebra --collection nowhere")
    with pytest.raises(UsageError, match="--extractor goes with --collection"):
        ip.run_cell_magic(
            "ingest", "--bucket media --create-bucket --extractor text_extractor", f"{media_folder}/notes/\n"
        )


def test_failures_grouped_by_error_with_their_pictures(ip, media_folder, local_server):
    import base64
    import io

    from PIL import Image

    from mixpeek_magics.notebook.gallery import failure_gallery

    (media_folder / "pictures" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png at all")
    local_server.update_settings(fail_filenames=["green-*"])
    _ingest_cell(ip, media_folder, "--no-strict")  # failures are this test's subject, not an error
    res = ip.user_ns["res"]
    assert res.collections["media"]["documents_written"] == 7  # 9 files, 2 failed
    gallery = failure_gallery(res)
    assert sorted((len(v), k.split(":")[0]) for k, v in gallery.groups.items()) == [
        (1, "cannot decode image"),
        (1, "injected failure"),
    ]
    markup = gallery._repr_html_()
    pictures = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', markup)
    assert len(pictures) == 2
    decodable = []
    for b64 in pictures:
        try:
            decodable.append(Image.open(io.BytesIO(base64.b64decode(b64))).size)
        except Exception:
            decodable.append(None)
    assert sorted(decodable, key=str) == [(96, 72), None]  # the failed good picture, and the broken one as is
    text = gallery.to_text()
    assert "pictures/broken.png [processing]" in text and "pictures/green-stripes.png [processing]" in text


def test_search_through_a_saved_retriever(ip, media_folder):
    from mixpeek_magics.client.resources.retrievers import attribute_filter_stage, feature_search_stage
    from mixpeek_magics.notebook import session

    _ingest_cell(ip, media_folder)
    client = session.signed_in_client()
    uri = client.collections.get("media").feature_uris[0]
    client.retrievers.create(
        "by-image",
        [feature_search_stage(uri, content="{{INPUT.picture}}", final_top_k=3)],
        ["media"],
        input_schema={"picture": {"type": "image", "required": True}},
    )
    client.retrievers.create(
        "notes",
        [feature_search_stage(uri, text="{{INPUT.q}}"), attribute_filter_stage("metadata.kind", "note")],
        ["media"],
        input_schema={"q": {"type": "text", "required": True}},
    )
    ip.run_line_magic("mixpeek_search", f"--image {media_folder}/pictures/night-sky.png --retriever by-image -o hits")
    assert ip.user_ns["hits"].iloc[0]["filename"] == "night-sky.png"
    gallery = ip.run_line_magic("mixpeek_search", "lighthouse --retriever notes")
    assert gallery.frame.iloc[0]["filename"] == "harbour.txt"
    assert gallery.title == "1 hit for 'lighthouse' in notes"
    assert list(gallery.frame.attrs["stage_statistics"]) == ["feature_search", "attribute_filter"]


def test_the_collection_step_waits_until_the_documents_are_queryable(ip, media_folder, local_server, capsys):
    """A COMPLETED batch may still be finalizing its documents (``documents_resolvable`` false):
    the collection step counts the batch's own ``documents_written`` once they are queryable, so
    the next cell's search finds them."""
    import time

    local_server.update_settings(resolvable_delay_seconds=1.5)
    started = time.monotonic()
    _ingest_cell(ip, media_folder)
    elapsed = time.monotonic() - started
    assert "Collection 'media': 8 documents written (8 in total)" in capsys.readouterr().out
    res = ip.user_ns["res"]
    [batch] = [ip.user_ns["res"].client.batches.get(res.bucket_id, b) for b in res.batches]
    assert batch.status == "COMPLETED" and batch.documents_written == 8 and batch.documents_resolvable is True
    assert elapsed >= 1.5  # waited for the finalizing batch
    frame = ip.run_line_magic("mixpeek_search", "savanna --collection media").frame
    assert frame.iloc[0]["filename"] == "zebra.md"
