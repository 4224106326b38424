"""The local server's feature extractors: small, deterministic stand-ins for Mixpeek's models.

Nothing is downloaded and nothing is random: the same bytes always give the same
features. ``text_extractor`` v1 embeds text by signed feature hashing of its
lower-cased words (a bag-of-words vector, L2-normalised); ``image_extractor`` v1
describes an image by its size, dominant colours, a vector of its colours (histogram and
layout) and shapes (average hash), and a JPEG thumbnail; ``multimodal_extractor`` v1 puts both
into one space (text part, image part), so one collection holds a mixed folder.
Text and images share no model offline: a text query scores images 0 and the
other way round.

Vectors are kept sparse (``{index: value}``): text vectors have a few dozen
non-zero entries out of 1024, and a dot product only visits those.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .._mime import is_image_mime, is_text_mime, mime_from_name

TEXT_DIMS = 1024
IMAGE_DIMS = 176  # 64 colour-histogram bins + 48 colour-layout values + 64 average-hash bits
MAX_TEXT_CHARS = 200_000  # what a document keeps of a text (and what is embedded)
THUMBNAIL_MAX_PX = 256
THUMBNAIL_QUALITY = 80

Vector = dict[int, float]

# Words too common to tell texts apart: without them a short query is about its content words.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
    ]
)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class ExtractionError(ValueError):
    """The input cannot be processed by this extractor (shown as the document's error)."""


# -- vectors -----------------------------------------------------------------------
def normalize(vec: Vector) -> Vector:
    norm = math.sqrt(sum(v * v for v in vec.values()))
    if norm == 0:
        return {}
    return {i: v / norm for i, v in vec.items() if v}


def dot(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    get = b.get
    return sum(v * get(i, 0.0) for i, v in a.items())


def dense(vec: Vector, dims: int) -> list[float]:
    out = [0.0] * dims
    for i, v in vec.items():
        out[i] = v
    return out


def sparse(values: list[float]) -> Vector:
    return normalize({i: float(v) for i, v in enumerate(values) if v})


def shift(vec: Vector, offset: int) -> Vector:
    return {i + offset: v for i, v in vec.items()}


def pack(vec: Vector) -> bytes:
    """A sparse vector as bytes (what the documents table stores)."""
    from array import array

    idx = array("I", sorted(vec))
    val = array("f", [vec[i] for i in idx])
    return len(idx).to_bytes(4, "little") + idx.tobytes() + val.tobytes()


def unpack(blob: bytes | None) -> Vector:
    from array import array

    if not blob:
        return {}
    n = int.from_bytes(blob[:4], "little")
    idx = array("I")
    idx.frombytes(blob[4 : 4 + 4 * n])
    val = array("f")
    val.frombytes(blob[4 + 4 * n : 4 + 8 * n])
    return dict(zip(idx, val))


# -- text ----------------------------------------------------------------------------
def tokens(text: str) -> list[str]:
    return [t for t in _WORD.findall(text.lower()) if t not in STOPWORDS]


def _slot(token: str, dims: int) -> tuple[int, float]:
    # blake2b, not hash(): the same word lands in the same slot in every process.
    h = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
    return h % dims, (1.0 if (h >> 63) & 1 else -1.0)


def embed_text(text: str, dims: int = TEXT_DIMS) -> Vector:
    """Signed feature hashing of the words, sublinear term frequency, L2-normalised."""
    vec: dict[int, float] = {}
    for tok, n in Counter(tokens(text[:MAX_TEXT_CHARS])).items():
        slot, sign = _slot(tok, dims)
        vec[slot] = vec.get(slot, 0.0) + sign * (1.0 + math.log(n))
    return normalize(vec)


def decode_text(raw: bytes) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(raw) - 3:  # a character cut in two by a size limit
            return raw[: exc.start].decode("utf-8", errors="replace")
        return raw.decode("latin-1")


def split_text(text: str, split_by: str | None, size: int, overlap: int) -> list[str]:
    """TextExtractorParams' chunking: ``none`` (one chunk), characters, words, sentences, paragraphs."""
    if not split_by or split_by == "none":
        return [text]
    if split_by == "characters":
        units, joiner = list(text), ""
    elif split_by == "words":
        units, joiner = text.split(), " "
    elif split_by == "sentences":
        units, joiner = [s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()], " "
    elif split_by == "paragraphs":
        units, joiner = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()], "\n\n"
    else:
        raise ExtractionError(
            f"split_by {split_by!r} is not available on the local server "
            "(none, characters, words, sentences, paragraphs)"
        )
    # chunk_size and chunk_overlap count units: characters, words, sentences or paragraphs
    size = max(1, int(size))
    step = max(1, size - max(0, min(int(overlap), size - 1)))
    chunks = []
    for i in range(0, len(units), step):
        chunks.append(joiner.join(units[i : i + size]))
        if i + size >= len(units):
            break
    return chunks or [text]


# -- images ------------------------------------------------------------------------------
@dataclass
class ImageFeatures:
    width: int
    height: int
    format: str | None
    dominant_colors: list[dict[str, Any]]
    vector: Vector
    thumbnail: bytes = field(repr=False)
    thumbnail_size: tuple[int, int] = (0, 0)


def _open_image(data: bytes) -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow comes with the local extra
        raise ExtractionError(f"cannot decode image: Pillow is not installed ({exc})") from None
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as exc:
        raise ExtractionError(f"cannot decode image: {' '.join(str(exc).split())}") from None
    return img


def _rgb(img: Any) -> Any:
    """RGB, transparent parts over white (what a viewer shows)."""
    from PIL import Image

    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _soft_bins(value: int) -> tuple[tuple[int, float], tuple[int, float]]:
    """A channel value shared between its two nearest of 4 bins (centres 32, 96, 160, 224), so
    close colours fall in the same bins."""
    pos = min(max((value - 32) / 64.0, 0.0), 3.0)
    low = min(int(pos), 2)
    frac = pos - low
    return (low, 1.0 - frac), (low + 1, frac)


def image_vector_of(rgb: Any) -> Vector:
    """A soft colour histogram (64 bins, square-rooted shares), the colour layout (mean colour
    of a 4x4 grid, centred), and the 64 bits of an 8x8 average hash (+-1); the parts weigh
    0.4, 0.4 and 0.2 of the unit length."""
    from PIL import Image

    small = rgb.resize((32, 32), Image.Resampling.BOX)
    hist = [0.0] * 64
    px = small.tobytes()  # RGB triples (getdata is deprecated in recent Pillow)
    for i in range(0, len(px), 3):
        r, g, b = px[i], px[i + 1], px[i + 2]
        for ri, rw in _soft_bins(r):
            for gi, gw in _soft_bins(g):
                for bi, bw in _soft_bins(b):
                    hist[ri * 16 + gi * 4 + bi] += rw * gw * bw
    total = sum(hist) or 1.0
    colour = _unit([math.sqrt(h / total) for h in hist])
    layout = _unit([(v - 127.5) / 127.5 for v in rgb.resize((4, 4), Image.Resampling.BOX).tobytes()])
    grey = list(rgb.convert("L").resize((8, 8), Image.Resampling.BOX).tobytes())
    mean = sum(grey) / 64.0
    bits = [(1.0 if p >= mean else -1.0) / 8.0 for p in grey]
    values = (
        [v * math.sqrt(0.4) for v in colour] + [v * math.sqrt(0.4) for v in layout] + [v * math.sqrt(0.2) for v in bits]
    )
    return sparse(values)


def _unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values] if norm else values


def dominant_colors(rgb: Any, n: int = 5) -> list[dict[str, Any]]:
    from PIL import Image

    small = rgb.resize((64, 64), Image.Resampling.BOX) if max(rgb.size) > 64 else rgb
    q = small.quantize(colors=n, method=Image.Quantize.MEDIANCUT)
    palette = q.getpalette() or []
    counts = sorted(q.getcolors() or [], reverse=True)
    total = float(sum(c for c, _ in counts)) or 1.0
    out = []
    for count, index in counts[:n]:
        r, g, b = palette[index * 3 : index * 3 + 3]
        out.append({"hex": f"#{r:02x}{g:02x}{b:02x}", "share": round(count / total, 4)})
    return out


def thumbnail_of(rgb: Any, max_px: int = THUMBNAIL_MAX_PX) -> tuple[bytes, tuple[int, int]]:
    from PIL import Image

    thumb = rgb.copy()
    thumb.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return buf.getvalue(), thumb.size


def image_features(data: bytes, thumbnails: bool = True) -> ImageFeatures:
    img = _open_image(data)
    fmt = img.format
    width, height = img.size
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # animated: the first frame stands for the image
    rgb = _rgb(img)
    thumb, size = thumbnail_of(rgb) if thumbnails else (b"", (0, 0))
    return ImageFeatures(
        width=width,
        height=height,
        format=fmt,
        dominant_colors=dominant_colors(rgb),
        vector=image_vector_of(rgb),
        thumbnail=thumb,
        thumbnail_size=size,
    )


def embed_image(data: bytes) -> Vector:
    return image_vector_of(_rgb(_open_image(data)))


# -- the catalogue -----------------------------------------------------------------------
@dataclass(frozen=True)
class Extractor:
    name: str
    version: str
    output: str  # the vector index's name (the last part of the feature URI)
    dims: int
    modalities: tuple[str, ...]
    description: str
    output_fields: dict[str, str]  # document field -> BucketSchemaFieldType
    parameter_names: tuple[str, ...]
    default_parameters: dict[str, Any]

    @property
    def extractor_id(self) -> str:
        return f"{self.name}_{self.version}"

    @property
    def feature_uri(self) -> str:
        return f"mixpeek://{self.name}@{self.version}/{self.output}"

    def embed_query_text(self, text: str) -> Vector:
        if "text" not in self.modalities:
            raise ExtractionError(
                f"{self.name}@{self.version} embeds images only on the local server: query it "
                "with an image (input_mode 'content') or a document (input_mode 'document')"
            )
        return embed_text(text)

    def embed_query_content(self, data: bytes, modality: str) -> Vector:
        if modality not in self.modalities:
            raise ExtractionError(
                f"{self.name}@{self.version} does not take {modality} input (it takes {', '.join(self.modalities)})"
            )
        if modality == "image":
            return self.image_part(embed_image(data))
        return embed_text(decode_text(data))

    def image_part(self, vec: Vector) -> Vector:
        """An image vector where this extractor keeps it: after the text part in the multimodal space."""
        return shift(vec, TEXT_DIMS) if self.name == "multimodal_extractor" else vec


_TEXT_PARAMS = (
    "extractor_type",
    "split_by",
    "chunk_size",
    "chunk_overlap",
    "language",
    "embedding_model",
    "embedding_task",
    "source_type",
    "extract_captions",
    "segment_length_seconds",
    "response_shape",
    "llm_provider",
    "llm_model",
    "llm_api_key",
)
_IMAGE_PARAMS = ("extractor_type", "enable_thumbnails", "use_cdn")
_TEXT_FIELDS = {"text": "text"}  # document field -> BucketSchemaFieldType
_IMAGE_FIELDS = {"width": "integer", "height": "integer", "dominant_colors": "array", "thumbnail_url": "string"}

EXTRACTORS: dict[str, Extractor] = {
    e.name: e
    for e in (
        Extractor(
            name="text_extractor",
            version="v1",
            output="multilingual_e5_large_instruct_v1",
            dims=TEXT_DIMS,
            modalities=("text",),
            description="Text embeddings for semantic search. Local stand-in (no model download): signed feature "
            "hashing of the lower-cased words into 1024 dimensions, L2-normalised; the document keeps "
            "the text.",
            output_fields=_TEXT_FIELDS,
            parameter_names=_TEXT_PARAMS,
            default_parameters={"split_by": "none", "chunk_size": 1000, "chunk_overlap": 0},
        ),
        Extractor(
            name="image_extractor",
            version="v1",
            output="google_siglip_base_v1",
            dims=IMAGE_DIMS,
            modalities=("image",),
            description="Image features for visual search. Local stand-in (no model download): width, height, "
            "dominant colours, a 176-dimension vector (colour histogram, colour layout, average "
            "hash), and a JPEG thumbnail (at most 256 px).",
            output_fields=_IMAGE_FIELDS,
            parameter_names=_IMAGE_PARAMS,
            default_parameters={"enable_thumbnails": True},
        ),
        Extractor(
            name="multimodal_extractor",
            version="v1",
            output="vertex_multimodal_embedding",
            dims=TEXT_DIMS + IMAGE_DIMS,
            modalities=("text", "image"),
            description="Text and images in one collection. Local stand-in (no model download): texts get the "
            "text_extractor's hashed vector and images the image_extractor's vector, in two parts of "
            "one 1200-dimension space; text and images do not match each other offline.",
            output_fields={**_TEXT_FIELDS, **_IMAGE_FIELDS},
            parameter_names=(
                *_IMAGE_PARAMS,
                "run_multimodal_embedding",
                "embedding_task",
                "task_type",
                "output_dimensionality",
            ),
            default_parameters={"enable_thumbnails": True},
        ),
    )
}


def find_extractor(name: str, version: str | None = None) -> Extractor | None:
    ext = EXTRACTORS.get(name)
    if ext is None or (version is not None and version != ext.version):
        return None
    return ext


def by_feature_uri(uri: str) -> Extractor | None:
    """``mixpeek://text_extractor@v1/<output>`` (the output may be left out)."""
    m = re.fullmatch(r"mixpeek://([A-Za-z0-9_]+)@(v\d+)(?:/([A-Za-z0-9_@.\-]+))?", uri.strip())
    if not m:
        return None
    ext = find_extractor(m.group(1), m.group(2))
    if ext is None or (m.group(3) and m.group(3) not in (ext.output, "embedding")):
        return None
    return ext


def available() -> str:
    return ", ".join(f"{e.name} {e.version}" for e in EXTRACTORS.values())


def modality_of(blob_type: str | None, mime: str | None, filename: str | None) -> str | None:
    """'text', 'image' or None (another kind of file) from a blob's declared type, MIME type and name."""
    t = (blob_type or "").lower()
    if is_image_mime(mime):
        return "image"
    if is_text_mime(mime):
        return "text"
    if t == "image":
        return "image"
    if t in ("text", "string"):
        return "text"
    by_name = mime_from_name(filename)  # the client's table: the name says what the type did not
    if is_image_mime(by_name):
        return "image"
    if is_text_mime(by_name):
        return "text"
    return None
