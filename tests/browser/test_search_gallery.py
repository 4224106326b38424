"""notebooks/search.ipynb in JupyterLab, Run All: the search galleries render as cards whose
thumbnails the browser really decodes (embedded images, no server URL), ranked as the
notebook says, with the stage timings under them; the documents table shows its
thumbnails as pictures. Screenshots of both go to ``test-artifacts/browser/``.

Relies only on the gallery's markup (``mixpeek_magics/notebook/gallery.py``): a
``.mixpeek-gallery`` block of ``.mg-card`` cards (``data-rank``), a ``.mg-stages``
table (failure triage: ``.mg-failed`` cards); and on the documents frame's
``table.mixpeek-media``."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.lab import REPO_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

SEARCH = "notebooks/search.ipynb"
_DECODED = "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight, e.src.slice(0, 22)])"


def test_search_notebook_shows_galleries_with_thumbnails(lab):
    assert (REPO_ROOT / SEARCH).is_file(), f"{SEARCH} is missing"
    lab.open_notebook(SEARCH)
    state = lab.run_all(timeout=180)
    assert state["cells"] > 0 and state["pending"] == 0, state
    panel = lab.panel()

    blocks = panel.locator(".jp-OutputArea-output .mixpeek-gallery")
    galleries = blocks.filter(has=lab.page.locator("table.mg-stages"))  # the searches'
    expect(galleries).to_have_count(3, timeout=20_000)  # by text, by image, filtered
    by_text, by_image, filtered = galleries.nth(0), galleries.nth(1), galleries.nth(2)

    # by text: the note with the word first, shown as a text snippet
    first = by_text.locator(".mg-card").first
    expect(first).to_have_attribute("data-rank", "1")
    expect(first).to_contain_text("poem.txt")
    expect(first.locator(".mg-snippet")).to_contain_text("Bytes in a bucket")

    # by image: the same picture first, perfect score, every thumbnail decoded from the page itself
    cards = by_image.locator(".mg-card")
    expect(cards).to_have_count(4)
    expect(cards.first).to_contain_text("sneaker.png")
    expect(cards.first.locator(".mg-score")).to_have_text("1.000")
    decoded = by_image.locator(".mg-card img").evaluate_all(_DECODED)
    assert len(decoded) == 4, decoded
    assert all(done and w > 0 and h > 0 and src.startswith("data:image/jpeg") for done, w, h, src in decoded), decoded
    # laid out as a grid of cards: side by side, each with a picture area of real size
    a, b = cards.nth(0).bounding_box(), cards.nth(1).bounding_box()
    assert b["x"] > a["x"] + a["width"] - 1 and abs(b["y"] - a["y"]) < 2, (a, b)
    media = cards.first.locator(".mg-media").bounding_box()
    assert media["height"] >= 100 and media["width"] >= 100, media
    expect(by_image.locator("table.mg-stages")).to_contain_text("feature_search")

    # the filter stage shows in the timings
    expect(filtered.locator("table.mg-stages")).to_contain_text("attribute_filter")
    expect(filtered.locator(".mg-card")).to_have_count(2)

    # the documents frame: thumbnails as pictures in the table
    thumbs = panel.locator("table.mixpeek-media img").evaluate_all(_DECODED)
    assert len(thumbs) == 4 and all(done and w > 0 for done, w, _h, _s in thumbs), thumbs

    # the failure triage: the broken image, under its error
    failed = blocks.filter(has=lab.page.locator(".mg-failed"))
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("cannot decode image")
    expect(failed.locator(".mg-failed")).to_contain_text("corrupt.png")

    assert lab.error_outputs() == [], lab.error_outputs()
    lab.screenshot("gallery-by-image", by_image)
    lab.screenshot("gallery-by-text", by_text)
    lab.screenshot("documents", panel.locator("table.mixpeek-media").first)
