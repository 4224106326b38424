"""Fixtures of the search tests: a local server with a namespace, a folder of texts and images."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.shell import magics_shell, sign_in

#: one word per text file that appears in no other file
TEXTS = {
    "harbour.txt": "Fishing boats rest in the quiet harbour while gulls circle the lighthouse at dusk.",
    "zebra.md": "# Field notes\n\nA zebra crossed the savanna road before the jeeps reached the river.",
    "recipe.txt": "Whisk the eggs with sugar, fold in the flour and bake the sponge for twenty minutes.",
    "meeting.csv": "topic,owner\nbudget review,Ana\nlaunch checklist,Ben\n",
}


def _png(draw: Any, size: tuple[int, int] = (96, 72), background: tuple[int, int, int] = (255, 255, 255)) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, background)
    draw(ImageDraw.Draw(img))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


IMAGES = {
    "red-circle.png": lambda: _png(lambda d: d.ellipse((18, 10, 78, 62), fill=(210, 30, 40))),
    "blue-square.png": lambda: _png(lambda d: d.rectangle((20, 12, 76, 60), fill=(30, 70, 200))),
    "green-stripes.png": lambda: _png(
        lambda d: [d.rectangle((0, y, 95, y + 5), fill=(40, 160, 70)) for y in range(0, 72, 12)]
    ),
    "night-sky.png": lambda: _png(lambda d: d.ellipse((60, 8, 80, 28), fill=(250, 240, 200)), background=(15, 20, 60)),
}


@pytest.fixture
def media_folder(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    (root / "notes").mkdir(parents=True)
    (root / "pictures").mkdir()
    for name, text in TEXTS.items():
        (root / "notes" / name).write_text(text)
    for name, make in IMAGES.items():
        (root / "pictures" / name).write_bytes(make())
    return root


@pytest.fixture
def client(local_server) -> Any:
    from mixpeek_magics.client import Mixpeek
    from mixpeek_magics.client.errors import ConflictError

    c = Mixpeek(api_key=local_server.api_key, base_url=local_server.base_url)
    try:
        c.namespaces.create("search")
    except ConflictError:  # the ip fixture made it
        pass
    yield c.with_options(namespace="search")
    c.close()


def assert_contract_clean(server: Any) -> None:
    """What the server answered was what the contract declares: nothing cut, nothing violated."""
    stats = server.contract_stats
    mine = [v for v in stats["violations"] if "/collections" in v["operation"] or "/retrievers" in v["operation"]]
    assert mine == [], mine
    dropped = {
        k: n
        for k, n in stats["fields_dropped"].items()
        if k.split(".")[0]
        in (
            "CollectionResponse",
            "ListCollectionsResponse",
            "DocumentResponse",
            "ListDocumentsResponse",
            "RetrieverConfig",
            "RetrieverModelOutput",
            "ListRetrieversResponse",
            "ExecuteRetrieverResponse",
            "TriggerCollectionResponse",
            "FeatureExtractorResponseModel",
        )
    }
    assert dropped == {}, dropped


@pytest.fixture
def ip(monkeypatch, local_server, tmp_path) -> Any:
    """A real IPython shell with the extension loaded, signed in to ``local_server`` (namespace
    ``search``); the working directory is a temp dir."""
    from mixpeek_magics.notebook.magics import options

    with magics_shell(monkeypatch, ("res", "hits", "docs", "g_")) as shell:
        options.current().widgets = False  # text progress: these tests read what is printed
        sign_in(shell, local_server, monkeypatch, tmp_path, "search")
        yield shell
