"""The local stand-in extractors: deterministic, normalised, and telling things apart."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from mixpeek_magics.local import extractors as X
from tests.search.conftest import IMAGES


def _norm(vec: dict[int, float]) -> float:
    return math.sqrt(sum(v * v for v in vec.values()))


def test_text_vectors_are_deterministic_across_processes():
    text = "The zebra crossed the savanna road"
    here = X.embed_text(text)
    code = (
        "from mixpeek_magics.local import extractors as X; "
        f"print(sorted((i, round(v, 9)) for i, v in X.embed_text({text!r}).items()))"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert there.strip() == str(sorted((i, round(v, 9)) for i, v in here.items()))


def test_text_vectors_find_shared_words():
    doc = X.embed_text("Fishing boats rest in the quiet harbour")
    assert math.isclose(_norm(doc), 1.0, rel_tol=1e-9)
    assert X.dot(doc, X.embed_text("harbour")) > 0.3
    assert X.dot(doc, X.embed_text("HARBOUR!")) == pytest.approx(X.dot(doc, X.embed_text("harbour")))
    assert X.dot(doc, X.embed_text("the")) == 0  # stop words carry nothing
    assert X.embed_text("") == {}
    packed = X.pack(doc)
    assert X.unpack(packed) == pytest.approx(doc)
    assert len(X.dense(doc, X.TEXT_DIMS)) == 1024


def test_text_chunks():
    text = "One. Two! Three? Four."
    assert X.split_text(text, "none", 1000, 0) == [text]
    assert X.split_text(text, "sentences", 2, 0) == ["One. Two!", "Three? Four."]
    assert X.split_text("a b c d e", "words", 2, 1) == ["a b", "b c", "c d", "d e"]
    assert X.split_text("p1\n\np2\n\np3", "paragraphs", 1, 0) == ["p1", "p2", "p3"]
    with pytest.raises(X.ExtractionError):
        X.split_text(text, "time_segments", 10, 0)


def test_image_features_and_vectors():
    import io

    from PIL import Image

    red, blue = IMAGES["red-circle.png"](), IMAGES["blue-square.png"]()
    f = X.image_features(red)
    assert (f.width, f.height, f.format) == (96, 72, "PNG")
    assert f.dominant_colors[0]["hex"] == "#ffffff" and any(c["hex"].startswith("#d") for c in f.dominant_colors)
    assert math.isclose(_norm(f.vector), 1.0, rel_tol=1e-6)
    thumb = Image.open(io.BytesIO(f.thumbnail))
    assert thumb.format == "JPEG" and thumb.size == (96, 72)
    assert X.dot(f.vector, X.embed_image(red)) == pytest.approx(1.0)
    assert X.dot(f.vector, X.embed_image(blue)) < 0.9
    big = io.BytesIO()
    Image.new("RGBA", (1200, 600), (0, 128, 0, 0)).save(big, format="PNG")  # transparent: shown over white
    g = X.image_features(big.getvalue())
    assert max(Image.open(io.BytesIO(g.thumbnail)).size) == 256
    assert g.dominant_colors[0]["hex"] == "#ffffff"
    with pytest.raises(X.ExtractionError, match="cannot decode image"):
        X.image_features(b"\x89PNG\r\n\x1a\nbroken")


def test_catalogue_and_feature_uris():
    assert X.by_feature_uri("mixpeek://text_extractor@v1/multilingual_e5_large_instruct_v1").name == "text_extractor"
    assert X.by_feature_uri("mixpeek://image_extractor@v1").name == "image_extractor"
    assert X.by_feature_uri("mixpeek://image_extractor@v2/google_siglip_base_v1") is None
    assert X.by_feature_uri("mixpeek://clip_extractor@v1/image_embedding") is None
    mm = X.EXTRACTORS["multimodal_extractor"]
    assert mm.dims == X.TEXT_DIMS + X.IMAGE_DIMS
    image_part = mm.embed_query_content(IMAGES["night-sky.png"](), "image")
    assert min(image_part) >= X.TEXT_DIMS  # images live in the second part of the space
    with pytest.raises(X.ExtractionError, match="images only"):
        X.EXTRACTORS["image_extractor"].embed_query_text("sky")


def test_decoding_text():
    assert X.decode_text("\ufeffhéllo".encode()) == "héllo"  # BOM dropped
    assert X.decode_text("wö".encode()[:-1]) == "w"  # a character cut by a size limit is dropped
    assert X.decode_text(b"caf\xe9 au lait") == "café au lait"  # not UTF-8: Latin-1
