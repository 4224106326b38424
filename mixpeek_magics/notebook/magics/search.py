"""``%mixpeek_search`` (search a collection, see the hits as a gallery) and ``%mixpeek_documents``
(a collection's documents as a DataFrame with thumbnails)."""

from __future__ import annotations

import json
import os
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from mixpeek_magics.notebook import session as S
from mixpeek_magics.notebook.magics._common import bind, parse

#: document fields a bare ``--filter NAME=VALUE`` means as they are; any other bare name is metadata.NAME
ROOT_FIELDS = frozenset({"text", "width", "height", "document_id", "collection_id", "thumbnail_url"})


class SearchError(S.MagicError):
    label = "MixpeekSearchError"


def parse_filters(items: list[str] | None) -> dict[str, Any]:
    """``["kind=note", "metadata.year=2024"]`` -> ``{"metadata.kind": "note", "metadata.year": 2024}``.
    A value is read as JSON when it is JSON (numbers, true, lists), else as text."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--filter {item!r}: expected FIELD=VALUE, e.g. --filter kind=note")
        if "." not in name and name not in ROOT_FIELDS:
            name = f"metadata.{name}"
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out[name] = value
    return out


@magics_class
class SearchMagics(Magics):
    @magic_arguments()
    @argument("query", nargs="*", help="What to look for (quote it when it has spaces).")
    @argument("--collection", "-c", default=None, help="Collection name or id to search.")
    @argument("-k", type=int, default=10, help="How many hits (default 10).")
    @argument(
        "--filter",
        "-f",
        dest="filters",
        action="append",
        default=None,
        metavar="FIELD=VALUE",
        help="Keep hits whose FIELD equals VALUE (repeatable); a bare name is metadata.NAME.",
    )
    @argument("--image", default=None, metavar="PATH", help="Search by example: the image (or text file) at PATH.")
    @argument(
        "--retriever",
        "-r",
        default=None,
        metavar="NAME",
        help="Run this saved retriever (the query goes to its first input) instead of an ad hoc search.",
    )
    @argument(
        "--no-thumbnails",
        dest="thumbnails",
        action="store_false",
        default=True,
        help="Do not download thumbnails (faster; the gallery shows text only).",
    )
    @argument("-o", "--output", default=None, metavar="VAR", help="Bind the DataFrame of hits to VAR.")
    @line_magic
    def mixpeek_search(self, line: str = "") -> Any:
        """Search a collection and show the hits as a gallery (thumbnails, scores, text snippets).

        Examples::

            %mixpeek_search "red sneaker" --collection shots
            %mixpeek_search harbour -c notes -k 5 --filter kind=note -o hits
            %mixpeek_search --image data/query.png --collection shots
            %mixpeek_search "red sneaker" --retriever product-search

        The gallery is static HTML with the thumbnails embedded, so a saved notebook and an
        HTML export show it without the server; in a terminal it is a ranked text table.
        ``-o VAR`` binds a DataFrame (rank, score, document_id, collection_id, root_object_id,
        filename, modality, snippet, thumbnail, metadata.* columns); the stage timings are in
        ``VAR.attrs["stage_statistics"]``.
        """
        args = parse(self.mixpeek_search, line)
        text = " ".join(args.query).strip() or None
        if text is not None and args.image is not None:
            raise UsageError("give a text query or --image PATH, not both")
        if text is None and args.image is None:
            raise UsageError('nothing to search for: %mixpeek_search "QUERY" --collection NAME (or --image PATH)')
        if not 1 <= args.k <= 1000:
            raise UsageError("-k must be from 1 to 1000")
        if args.collection is None and args.retriever is None:
            raise UsageError("%mixpeek_search needs --collection NAME (or --retriever NAME)")
        image = None
        if args.image is not None:
            image = os.path.expanduser(args.image)
            if not os.path.isfile(image):
                raise UsageError(f"--image {args.image}: no such file")
        filters = parse_filters(args.filters)
        client = S.signed_in_client()
        from mixpeek_magics.client import errors
        from mixpeek_magics.frames.search import hits_frame
        from mixpeek_magics.notebook.gallery import Gallery

        shown_query = text if text is not None else f"<image {os.path.basename(image or '')}>"
        try:
            if args.retriever is not None:
                results = self._run_retriever(client, args.retriever, text, image, filters, args.k)
                where = args.retriever
            else:
                results = client.retrievers.search(args.collection, text, image=image, k=args.k, filters=filters)
                where = args.collection
            frame = hits_frame(results, client, query=text, thumbnails=args.thumbnails)
        except errors.NotFoundError as exc:
            raise SearchError(str(exc)) from None
        except errors.MixpeekError as exc:
            raise SearchError(f"search failed: {exc}") from None
        except (OSError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        frame.attrs.update(query=shown_query, collection=where)
        gallery = Gallery(frame)
        if args.output:
            bind(self.shell, args.output, frame)
            from IPython.display import display

            display(gallery)
            return None
        return gallery

    @staticmethod
    def _run_retriever(
        client: Any, name: str, text: str | None, image: str | None, filters: dict[str, Any], k: int
    ) -> Any:
        from mixpeek_magics.client.resources.retrievers import data_uri

        retriever = client.retrievers.get(name)
        schema = retriever.input_schema or {}
        value = text if text is not None else data_uri(image or "")
        kinds = ("image", "video", "audio", "pdf") if text is None else ("text", "string")
        keys = [key for key, spec in schema.items() if str((spec or {}).get("type", "")).lower() in kinds]
        key = keys[0] if keys else (next(iter(schema)) if schema else "query")
        logical = None
        if filters:
            logical = {"AND": [{"field": f, "operator": "eq", "value": v} for f, v in filters.items()]}
        return client.retrievers.execute(
            retriever.retriever_id or name, {key: value}, filters=logical, limit=k, return_presigned_urls=True
        )

    @magic_arguments()
    @argument("collection", help="Collection name or id.")
    @argument(
        "--filter",
        "-f",
        dest="filters",
        action="append",
        default=None,
        metavar="FIELD=VALUE",
        help="Only documents whose FIELD equals VALUE (repeatable); a bare name is metadata.NAME.",
    )
    @argument("--search", default=None, help="Only documents containing this text.")
    @argument("--limit", "-n", type=int, default=100, help="At most this many documents (default 100; 0: all).")
    @argument(
        "--no-thumbnails", dest="thumbnails", action="store_false", default=True, help="Do not download thumbnails."
    )
    @argument("-o", "--output", default=None, metavar="VAR", help="Bind the DataFrame to VAR instead of showing it.")
    @line_magic
    def mixpeek_documents(self, line: str = "") -> Any:
        """A collection's documents as a DataFrame: lineage (root_object_id), filename, modality,
        text, image size, metadata and a thumbnail column shown as images.

        Examples::

            %mixpeek_documents shots
            %mixpeek_documents notes --filter kind=note -o docs
            %mixpeek_documents shots --limit 0 --no-thumbnails -o everything
        """
        args = parse(self.mixpeek_documents, line)
        if args.limit < 0:
            raise UsageError("--limit must be 0 (all) or more")
        client = S.signed_in_client()
        from mixpeek_magics.client import errors
        from mixpeek_magics.frames.search import documents_frame

        try:
            frame = documents_frame(
                args.collection,
                client,
                filters=parse_filters(args.filters) or None,
                search=args.search,
                limit=args.limit or None,
                thumbnails=args.thumbnails,
            )
        except errors.NotFoundError as exc:
            raise SearchError(str(exc)) from None
        except errors.MixpeekError as exc:
            raise SearchError(f"cannot list the documents of {args.collection!r}: {exc}") from None
        if args.output:
            bind(self.shell, args.output, frame)
            return None
        return frame
