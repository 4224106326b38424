"""The gallery as HTML with embedded images (also in an nbconvert export with no server) and as text."""

from __future__ import annotations

import base64
import io
import re

import pytest

from mixpeek_magics.ingest import bulk_upload
from tests.search.conftest import IMAGES, TEXTS

_IMG = re.compile(r'<img [^>]*src="data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture
def searchable(client, media_folder):
    bucket = client.buckets.create("media", {"text": {"type": "text"}, "image": {"type": "image"}})
    client.collections.create("media", bucket.bucket_id, "multimodal_extractor")
    result = bulk_upload(
        client, "media", sorted(p for p in media_folder.rglob("*") if p.is_file()), metadata={"campaign": "q3"}
    )
    client.tasks.wait(result.task_id, timeout=60)
    return client


def _decoded_images(markup: str) -> list:
    from PIL import Image

    out = []
    for mime, b64 in _IMG.findall(markup):
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.load()
        out.append((mime, img))
    return out


def test_gallery_html_embeds_the_thumbnails_and_text_ranks(searchable, media_folder, local_server):
    from mixpeek_magics.frames import hits_frame
    from mixpeek_magics.notebook.gallery import Gallery

    results = searchable.retrievers.search("media", image=media_folder / "pictures" / "blue-square.png", k=4)
    frame = hits_frame(results, searchable, query="<image blue-square.png>")
    gallery = Gallery(frame)
    markup = gallery._repr_html_()
    cards = re.findall(r'<div class="mg-card" data-rank="(\d+)"', markup)
    assert cards == ["1", "2", "3", "4"][: len(frame)] and len(cards) >= 2
    images = _decoded_images(markup)
    assert len(images) == len(frame)  # every image hit has its picture in the page itself
    assert all(mime == "image/jpeg" and img.format == "JPEG" and img.size == (96, 72) for mime, img in images)
    assert local_server.base_url not in markup and "thumbnails/" not in markup  # nothing to fetch later
    first_card = markup[markup.index('data-rank="1"') : markup.index('data-rank="2"')]
    assert "blue-square.png" in first_card and "1.000" in first_card and "campaign=q3" in first_card
    assert "feature_search" in markup and "ms</td>" in markup  # the stage timings under the cards
    text = gallery.to_text()
    lines = text.splitlines()
    assert lines[0] == f"{len(frame)} hits for <image blue-square.png>"
    assert lines[1].split() == ["rank", "score", "name", "kind", "snippet", "/", "details"]
    assert lines[2].split()[:4] == ["1", "1.000", "blue-square.png", "image"]
    assert lines[-1].startswith("stages: feature_search 8 -> ")
    assert "data:image" not in text and "<img" not in text
    bundle = gallery._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}


def test_text_hits_show_snippets(searchable):
    from mixpeek_magics.frames import hits_frame
    from mixpeek_magics.notebook.gallery import Gallery

    frame = hits_frame(searchable.retrievers.search("media", "eggs flour sponge"), searchable, query="eggs flour")
    assert frame.iloc[0]["filename"] == "recipe.txt"
    assert frame.iloc[0]["snippet"] == TEXTS["recipe.txt"]
    markup = Gallery(frame)._repr_html_()
    assert '<div class="mg-snippet">Whisk the eggs with sugar' in markup
    assert "<img" not in markup  # texts have no thumbnail


def test_documents_frame_html_shows_images(searchable):
    from mixpeek_magics.frames import documents_frame

    frame = documents_frame("media", searchable)
    assert len(frame) == len(TEXTS) + len(IMAGES)
    assert list(frame.columns[:6]) == [
        "document_id",
        "collection_id",
        "root_object_id",
        "filename",
        "modality",
        "mime_type",
    ]
    markup = frame._repr_html_()
    assert len(_decoded_images(markup)) == len(IMAGES)
    plain = repr(frame[["filename", "thumbnail"]])
    assert "<thumbnail 96x72 jpeg>" in plain and "base64" not in plain
    # a slice is still a frame with images; without the column it is a plain table
    assert len(_decoded_images(frame[frame["modality"] == "image"]._repr_html_())) == len(IMAGES)
    assert "<img" not in frame[["filename", "modality"]]._repr_html_()
    # HTML in a document's text is shown as text, not markup
    assert "<script" not in markup


def test_gallery_in_an_html_export_without_the_server(searchable, media_folder, local_server, tmp_path):
    import nbformat
    from nbconvert import HTMLExporter

    from mixpeek_magics.frames import hits_frame
    from mixpeek_magics.notebook.gallery import Gallery

    frame = hits_frame(
        searchable.retrievers.search("media", image=media_folder / "pictures" / "red-circle.png"),
        searchable,
        query="<image red-circle.png>",
    )
    bundle = Gallery(frame)._repr_mimebundle_()
    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "%mixpeek_search --image red-circle.png -c media",
            outputs=[nbformat.v4.new_output("display_data", data=bundle)],
        )
    )
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    base_url = local_server.base_url
    local_server.stop()  # the export must not need it
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(path, as_version=4))
    assert 'class="mixpeek-gallery"' in body
    images = _decoded_images(body)
    assert len(images) == len(frame) and images[0][1].size == (96, 72)
    assert "red-circle.png" in body and base_url not in body
