"""Gallery cards of audio and video hits, from hand-built hits shaped like the contract's documents.

The local extractors make text and image documents only; the real service also returns video
segments and audio. These hits are what an ``ExecuteRetrieverResponse`` carries for them (each
checked against the vendored contract's ``DocumentResponse``), with media URLs on 127.0.0.1 that
nothing fetches: a video card shows its keyframe (the thumbnail, embedded) and its segment, an
audio card a player that loads nothing until played.
"""

from __future__ import annotations

import base64
import io
import re

import pytest

from mixpeek_magics.client.models.retrievers import RetrieverResults

NOWHERE = "http://127.0.0.1:9"  # discard port: a fetch would fail, and none is made


def _keyframe() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 120, 30)).save(buf, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _blob(kind: str, name: str, mime: str, presigned: str | None) -> dict:
    return {
        "field": kind,
        "url": f"s3://media-bucket/{name}",
        "presigned_url": presigned,
        "role": "source",
        "type": kind,
        "filename": name,
        "content_type": mime,
    }


def _doc(doc_id: str, kind: str, name: str, mime: str, score: float, presigned: str | None, **fields) -> dict:
    return {
        "document_id": doc_id,
        "collection_id": "col_media",
        "document_blobs": [_blob(kind, name, mime, presigned)],
        "_internal": {"modality": kind, "mime_type": mime, "lineage": {"root_object_id": f"obj_{doc_id}"}},
        "score": score,
        **fields,
    }


HITS = [
    _doc(
        "doc_seg",
        "video",
        "launch.mp4",
        "video/mp4",
        0.93,
        f"{NOWHERE}/launch.mp4?X-Amz-Signature=abc&X-Amz-Expires=3600",
        start_time=10.0,
        end_time=20.5,
        thumbnail_url=_keyframe(),
        video_segment_url=f"{NOWHERE}/segments/doc_seg.mp4?sig=1&part=2",
        description="A rocket lifts off from the pad.",
    ),
    _doc(
        "doc_talk",
        "audio",
        "keynote.mp3",
        "audio/mpeg",
        0.81,
        f"{NOWHERE}/keynote.mp3?X-Amz-Signature=def",
        start_time=65.0,
        end_time=95.0,
        text="Welcome everyone to the launch keynote, today we talk about rockets.",
    ),
    # no presigned URL (the caller did not ask for them) and a URL no browser should follow
    _doc("doc_mute", "audio", "memo.wav", "audio/wav", 0.52, None),
    _doc(
        "doc_raw",
        "video",
        "raw.mov",
        "video/quicktime",
        0.40,
        None,
        video_segment_url="javascript:alert(1)",
        start_time=3725.0,
    ),
]


def _results() -> RetrieverResults:
    from mixpeek_magics.local.contract import strict

    validators = strict().validators
    for hit in HITS:
        assert validators.errors("DocumentResponse", hit) == [], hit["document_id"]
    return RetrieverResults.model_validate(
        {
            "execution_id": "exec_1",
            "status": "completed",
            "documents": HITS,
            "stage_statistics": {
                "stages": {
                    "feature_search": {"input_count": 40, "output_count": 4, "duration_ms": 12.5, "efficiency": 0.1}
                },
                "total_time_ms": 14.0,
            },
        }
    )


def _card(markup: str, doc_id: str) -> str:
    start = markup.index(f'data-document-id="{doc_id}"')
    end = markup.find('<div class="mg-card"', start)
    return markup[start : end if end > 0 else len(markup)]


@pytest.fixture
def gallery():
    from mixpeek_magics.frames import hits_frame
    from mixpeek_magics.notebook.gallery import Gallery

    # data: thumbnails are decoded, not fetched: no client, no server
    frame = hits_frame(_results(), client=object(), query="rocket launch")
    return Gallery(frame)


def test_hits_frame_keeps_what_plays_them(gallery):
    import pandas as pd

    frame = gallery.frame
    assert list(frame["document_id"]) == ["doc_seg", "doc_talk", "doc_mute", "doc_raw"]
    assert list(frame["modality"]) == ["video", "audio", "audio", "video"]
    seg, talk, mute, raw = (frame.iloc[i] for i in range(4))
    assert seg["media_url"] == f"{NOWHERE}/segments/doc_seg.mp4?sig=1&part=2"  # the segment, not the whole video
    assert talk["media_url"] == f"{NOWHERE}/keynote.mp3?X-Amz-Signature=def"
    assert pd.isna(mute["media_url"]) and pd.isna(raw["media_url"])  # s3:// and javascript: do not play
    assert (seg["start_time"], seg["end_time"]) == (10.0, 20.5)
    assert seg["thumbnail"] is not None and seg["thumbnail"].size == (64, 36)
    assert talk["thumbnail"] is None


def test_text_and_image_frames_get_no_media_columns(gallery):
    from mixpeek_magics.frames import hits_frame

    texts = RetrieverResults.model_validate(
        {
            "execution_id": "exec_2",
            "status": "completed",
            "documents": [
                {
                    "document_id": "doc_t",
                    "collection_id": "col_media",
                    "text": "hello",
                    "_internal": {"modality": "text", "mime_type": "text/plain"},
                }
            ],
        }
    )
    frame = hits_frame(texts, client=object(), query="hello")
    assert not {"media_url", "start_time", "end_time"} & set(frame.columns)


def test_video_card_shows_its_keyframe_and_segment(gallery):
    markup = gallery._repr_html_()
    card = _card(markup, "doc_seg")
    pictures = re.findall(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', card)
    assert len(pictures) == 1
    from PIL import Image

    assert Image.open(io.BytesIO(base64.b64decode(pictures[0]))).size == (64, 36)
    # the badge links the segment (escaped), marked with its place in the video
    assert (
        f'<a class="mg-badge" href="{NOWHERE}/segments/doc_seg.mp4?sig=1&amp;part=2" target="_blank" '
        'rel="noopener noreferrer">▶ 0:10–0:20</a>'
    ) in card
    assert "<video" not in card and "<audio" not in card
    # without a keyframe or a URL: an icon and the start, and never a javascript: link
    raw = _card(markup, "doc_raw")
    assert '<span class="mg-icon">🎞</span><span class="mg-badge">▶ 1:02:05</span>' in raw
    assert "javascript" not in markup and "href" not in raw


def test_audio_card_plays_only_when_asked(gallery):
    markup = gallery._repr_html_()
    talk = _card(markup, "doc_talk")
    players = re.findall(r"<audio [^>]*>", talk)
    assert players == [f'<audio controls preload="none" src="{NOWHERE}/keynote.mp3?X-Amz-Signature=def">']
    assert '<div class="mg-snippet">Welcome everyone to the launch keynote' in talk  # its transcript
    assert "1:05–1:35" in talk  # the segment in the details line
    mute = _card(markup, "doc_mute")
    assert "<audio" not in mute and "no playable URL" in mute and "🎵" in mute
    # nothing in the page loads from the network by itself: no src on 127.0.0.1 but the lazy player
    assert re.findall(r'src="http[^"]*"', markup) == [f'src="{NOWHERE}/keynote.mp3?X-Amz-Signature=def"']


def test_media_hits_in_the_text_table(gallery):
    lines = gallery.to_text().splitlines()
    assert lines[0] == "4 hits for 'rocket launch'"
    assert lines[2].split()[:4] == ["1", "0.930", "launch.mp4", "video"]
    assert lines[2].split()[4:] == ["0:10–0:20"]
    assert "Welcome everyone" in lines[3] and lines[3].split()[3] == "audio"
    assert lines[5].split()[2:] == ["raw.mov", "video", "1:02:05"]
    assert "http" not in "\n".join(lines) and "<" not in "\n".join(lines[1:])
