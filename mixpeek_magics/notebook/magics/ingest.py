"""``%%ingest``: files, globs, directories, URLs and S3 / Google Drive folders into a bucket."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from mixpeek_magics.notebook import session as S
from mixpeek_magics.notebook.magics import options
from mixpeek_magics.notebook.magics._common import bind, parse, provenance, strict_args, summarize, user_var

if TYPE_CHECKING:
    from mixpeek_magics.client.models.buckets import Bucket
    from mixpeek_magics.ingest.collections import CollectionRun
    from mixpeek_magics.ingest.plan import Plan
    from mixpeek_magics.ingest.runner import IngestResult, UploadStats
    from mixpeek_magics.notebook.ingest_display import UploadDisplay


class IngestValidationError(S.MagicError):
    """Every problem of the cell (syntax, missing files, unknown connections); nothing was sent."""

    label = "IngestError"

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in %%ingest; nothing was sent:"
        super().__init__(head + "\n" + summarize(self.problems, 20, more_hint=" (all of them: exc.problems)"))


class IngestRunError(S.MagicError):
    label = "IngestError"


DRY_RUN_COLUMNS = ["source", "kind", "size", "mime_type", "state", "line", "row", "metadata", "connection"]


def _parse_collecting(body: str, user_ns: Any) -> tuple[list[Any], list[tuple[int, int, str]]]:
    """All parsable lines and every syntax error (line, col, text)."""
    from mixpeek_magics.ingest.parser import IngestSyntaxError, parse_body, split_lines

    try:
        return parse_body(body, user_ns), []
    except IngestSyntaxError as exc:
        bad = {e.line for e in exc.errors}
        errors = [(e.line, e.column, str(e)) for e in exc.errors]
    lines = split_lines(body)
    cleaned = "\n".join("" if i in bad else text for i, text in enumerate(lines, start=1))
    try:
        return parse_body(cleaned, user_ns), errors
    except IngestSyntaxError as exc:  # pragma: no cover - a line's validity does not depend on others
        return [], errors + [(e.line, e.column, str(e)) for e in exc.errors]


def _problem_sort_key(p: tuple[int, int, str]) -> tuple[int, int]:
    return (p[0] if p[0] is not None else 10**9, p[1])


@magics_class
class IngestMagics(Magics):
    @magic_arguments()
    @argument(
        "--bucket", "-b", default=None, help="Bucket name or id (default: %%config MixpeekMagics.default_bucket)."
    )
    @argument(
        "--create-bucket",
        action="store_true",
        help="Create the bucket if missing, with a schema inferred from the sources' blob types.",
    )
    @argument(
        "--collection",
        default=None,
        metavar="NAME",
        help="Make the files searchable: the collection NAME on the bucket (created when missing).",
    )
    @argument(
        "--extractor",
        default=None,
        metavar="NAME",
        help="Feature extractor of a new --collection (default: text_extractor for texts, image_extractor "
        "for images, multimodal_extractor for both).",
    )
    @argument("--namespace", default=None, help="Namespace name or id (default: the one of %%mixpeek_auth).")
    @argument("--metadata", default=None, help='JSON object given to every item, e.g. \'{"campaign": "q3"}\'.')
    @argument(
        "--concurrency",
        type=int,
        default=None,
        help="Files uploaded in parallel (default: %%config MixpeekMagics.concurrency).",
    )
    @argument(
        "--wait",
        dest="wait",
        action="store_true",
        default=True,
        help="Wait until processing ends (default); FAILED work raises.",
    )
    @argument("--no-wait", dest="wait", action="store_false", help="Return once submitted; the board keeps updating.")
    @argument("-o", "--output", default=None, metavar="VAR", help="Bind the IngestResult (or dry-run frame) to VAR.")
    @argument(
        "--dry-run",
        action="store_true",
        help="Show the plan as a DataFrame (source, kind, size, MIME type, already ingested or new); send nothing.",
    )
    @argument("--force", action="store_true", help="Re-ingest items already ingested.")
    @argument(
        "--retry-failed",
        default=None,
        metavar="VAR_OR_TASK_ID",
        help="Re-ingest the failed items of a previous result (variable) or task id.",
    )
    @argument("--frame", default=None, metavar="DF", help="Ingest one object per row of this DataFrame.")
    @argument("--path-col", default=None, help="--frame column with the file path or URL.")
    @argument("--metadata-cols", default=None, help="--frame columns copied into metadata: a,b,c or *.")
    @strict_args
    @line_cell_magic
    def ingest(self, line: str = "", cell: str | None = None) -> Any:
        """Ingest local files, URLs and S3 / Google Drive folders into a Mixpeek bucket.

        One source per line of the cell body::

            %%ingest --bucket product-shots -o result
            data/shots/**/*.jpg                                 # files, globs, directories
            https://example.com/intro.mp4  {"title": "Intro"}   # URL with inline metadata
            {extra_dir}/*.png                                   # Python variables interpolated
            s3://raw-media/2026/ via "Production S3"            # server-side sync from a connection
            gdrive://0AH-Xabc123 via conn_abc123

        Everything is validated before anything is sent: every syntax error (line and
        column), missing file and unknown connection is reported together.

        Re-running a cell is safe: files already ingested into the bucket are skipped
        (local state keyed by server, bucket and sha256, plus the API's duplicate
        check), so an interrupted run resumes where it stopped.

        Examples::

            %%ingest --bucket shots --dry-run           # the plan as a DataFrame; nothing sent
            %%ingest --bucket shots --create-bucket --metadata '{"campaign": "q3"}'
            %%ingest --bucket shots --no-wait           # return at once; the board keeps updating
            %ingest --bucket shots --frame df --path-col path --metadata-cols label,split
            %ingest --bucket shots --retry-failed result
            %ingest --bucket shots --retry-failed task_abc123
            %%ingest --bucket notes --create-bucket --collection notes   # searchable: %mixpeek_search

        The result (``-o VAR``) is an IngestResult: ``.objects``, ``.batches``,
        ``.tasks``, ``.failures`` (DataFrame), ``.wait()``, ``.cancel()``, ``.to_frame()``.
        """
        args = parse(self.ingest, line)
        body = cell or ""
        bucket, metadata, concurrency = _checked_options(args, body)
        session = S.current()
        if args.dry_run:
            plan = self._plan(args, body, metadata, client=None)
            frame = self._dry_run_frame(plan, bucket, args.namespace, session)
            if args.output:
                bind(self.shell, args.output, frame)
                return None
            return frame

        client = S.signed_in_client()
        if args.namespace:
            client = client.with_options(namespace=args.namespace)
        if not client.config.namespace:
            raise UsageError("no namespace: pass --namespace NAME, or sign in with %mixpeek_auth --namespace NAME")
        plan = self._plan(args, body, metadata, client=client)
        return self._run(args, plan, client, bucket, session, concurrency, line)

    # -- planning -------------------------------------------------------------------------
    def _user_ns(self) -> dict[str, Any]:
        if self.shell is None:
            raise UsageError("%%ingest runs in an IPython shell")
        return self.shell.user_ns

    def _plan(self, args: Any, body: str, metadata: dict[str, Any], client: Any) -> Plan:
        """Every source checked (every problem reported at once). Files are hashed here only for
        ``--dry-run`` (its states come from their hashes); a run hashes them as it uploads."""
        from mixpeek_magics.ingest.plan import PlanError, build_plan, plan_from_records

        hash_files = bool(args.dry_run)
        problems: list[tuple[int, int, str]] = []
        plan = None
        if args.frame is not None:
            df = user_var(self.shell, args.frame, "--frame")
            if not hasattr(df, "to_dict"):
                raise UsageError(f"--frame {args.frame}: expected a pandas DataFrame, got {type(df).__name__}")
            try:
                plan = plan_from_records(
                    df.to_dict("records"),
                    args.path_col,
                    args.metadata_cols,
                    default_metadata=metadata,
                    hash_files=hash_files,
                    index=list(df.index),
                )
            except PlanError as exc:
                problems += [(10**9, 0, str(p)) for p in exc.problems]
        elif args.retry_failed is not None:
            records = self._retry_records(args.retry_failed, client)
            try:
                plan = plan_from_records(records, "path", "*", default_metadata=metadata, hash_files=hash_files)
            except PlanError as exc:
                problems += [(10**9, 0, str(p)) for p in exc.problems]
        else:
            lines, syntax = _parse_collecting(body, self._user_ns())
            problems += syntax
            known = None
            if client is not None and any(ln.kind in ("s3", "gdrive") for ln in lines):
                known = self._known_connections(client)
            try:
                plan = build_plan(
                    lines, cwd=os.getcwd(), default_metadata=metadata, known_connections=known, hash_files=hash_files
                )
            except PlanError as exc:
                problems += [(p.line if p.line is not None else 10**9, 0, str(p)) for p in exc.problems]
        if problems:
            problems.sort(key=_problem_sort_key)
            raise IngestValidationError([text for _l, _c, text in problems])
        if plan is None or not plan.items:
            raise UsageError("nothing to ingest: the cell has no sources")
        return plan

    def _known_connections(self, client: Any) -> dict[str, str]:
        """Connection names and ids -> ids, to check the ``via`` names before anything is sent."""
        from mixpeek_magics.client import errors

        known: dict[str, str] = {}
        try:
            for c in client.connections.iter():
                if c.connection_id:
                    known[c.connection_id] = c.connection_id
                    if c.name:
                        known[c.name] = c.connection_id
        except errors.MixpeekError as exc:
            raise IngestRunError(f"cannot list storage connections to check the via names: {exc}") from None
        return known

    def _retry_records(self, ref: str, client: Any) -> list[dict[str, Any]]:
        from mixpeek_magics.ingest.runner import IngestResult, IngestState

        value = self._user_ns().get(ref) if ref.isidentifier() else None
        if isinstance(value, IngestResult):
            value._load_final_tasks()
            failed_objects = set()
            for rec in value.failure_records():
                if rec.get("object_id"):
                    failed_objects.add(rec["object_id"])
            records = []
            for item in value.items:
                if item.kind not in ("file", "url"):
                    continue
                if item.status == "failed" or (item.object_id and item.object_id in failed_objects):
                    records.append({"path": item.source, **(item.metadata or {})})
            if not records:
                raise UsageError(f"--retry-failed {ref}: that result has no failed items")
            return records
        if value is not None:
            raise UsageError(
                f"--retry-failed {ref}: expected an IngestResult or a task id, got a {type(value).__name__}"
            )
        if client is None:
            client = S.signed_in_client()
        from mixpeek_magics.client import errors

        state = IngestState(opts_state_path())
        try:
            task = client.tasks.get(ref)
        except errors.NotFoundError:
            task = None  # unknown, or its record expired: the batch this machine submitted it with tells
        ref_batch = (
            (task.bucket_id, task.batch_id) if task is not None and task.batch_id else _batch_of_task(state, ref)
        )
        if ref_batch is None:
            if task is None:
                raise UsageError(f"--retry-failed {ref}: no such variable or task")
            raise UsageError(f"--retry-failed {ref}: task {task.status} has no batch, so no failed items")
        try:
            batch = client.batches.get(
                ref_batch[0], ref_batch[1], namespace=task.namespace_id if task is not None else None
            )
        except errors.NotFoundError:
            raise UsageError(f"--retry-failed {ref}: its batch {ref_batch[1]} is gone") from None
        failed = [f.object_id for f in batch.failed_objects or []]  # the failed items are the batch's
        if not failed:
            raise UsageError(f"--retry-failed {ref}: task {task.status if task else batch.status} has no failed items")
        sources = _sources_for_objects(state, failed)
        records, missing = [], []
        for oid in failed:
            src = sources.get(oid)
            if src:
                records.append({"path": src})
            else:
                missing.append(f"{oid}: not ingested from this machine, its local source is unknown")
        if missing:
            raise IngestValidationError(missing)
        return records

    # -- dry run --------------------------------------------------------------------------
    def _dry_run_frame(self, plan: Any, bucket: str, namespace: str | None, session: Any) -> Any:
        from mixpeek_magics._extras import require

        require("notebook", "pandas")
        import pandas as pd

        from mixpeek_magics.ingest.runner import IngestState, item_key

        known: dict[str, Any] = {}
        if session is not None:
            ns_refs = [namespace] if namespace else [session.namespace_id, session.namespace_name]
            known = IngestState(opts_state_path()).lookup(
                server_id(session), [bucket], [item_key(i) for i in plan.items if item_key(i)], namespace_refs=ns_refs
            )
        rows = []
        for item in plan.items:
            key = item_key(item)
            row = known.get(key) if key else None
            if item.kind in ("s3", "gdrive"):
                state = "sync"
            elif session is None:
                state = "unknown (not signed in)"
            elif row and row["status"] == "submitted":
                state = "already ingested"
            elif row:
                state = "uploaded, not processed"
            else:
                state = "new"
            rows.append(
                {
                    "source": _shown(item),
                    "kind": item.kind,
                    "size": item.size,
                    "mime_type": item.mime_type,
                    "state": state,
                    "line": item.line,
                    "row": item.row,
                    "metadata": dict(item.metadata),
                    "connection": item.connection,
                }
            )
        frame = pd.DataFrame(rows, columns=DRY_RUN_COLUMNS)
        frame["size"] = frame["size"].astype("Int64")
        frame["line"] = frame["line"].astype("Int64")
        for col in ("row", "connection"):  # only shown when they say something
            if frame[col].isna().all():
                frame = frame.drop(columns=col)
        frame.attrs["summary"] = plan.summary()
        return frame

    # -- run ------------------------------------------------------------------------------
    def _run(
        self, args: Any, plan: Plan, client: Any, bucket_ref: str, session: Any, concurrency: int, line: str
    ) -> Any:
        opts = options.current()
        bucket = _resolve_bucket(args, client, bucket_ref, plan)
        collection = _collection_step(args, client, bucket, plan) if args.collection else None
        prov = provenance(self.shell, "%%ingest " + line)
        result = self._upload(args, plan, client, bucket, bucket_ref, session, concurrency, prov)
        print(result.summary())

        context = {
            "cell": prov.get("cell"),
            "notebook": prov.get("notebook"),
            "source": prov.get("source"),
            "label": f"%%ingest {bucket_ref}",
        }
        _journal_confirm_tasks(client, result, opts.journal(), context)
        if result.tasks:
            _show_board(args, client, result, context)
        strict = opts.is_strict(args.strict)
        if args.wait:
            self._wait(args, result, strict, collection)
        elif strict:
            self._raise_for_failed_syncs(args, result)
        if args.output:
            bind(self.shell, args.output, result)
            return None
        return result

    def _upload(
        self,
        args: Any,
        plan: Plan,
        client: Any,
        bucket: Bucket,
        bucket_ref: str,
        session: Any,
        concurrency: int,
        prov: dict[str, Any],
    ) -> IngestResult:
        """Run the plan (files uploaded with a progress display); returns once the batch is submitted."""
        from mixpeek_magics.client import errors
        from mixpeek_magics.ingest import runner
        from mixpeek_magics.notebook.ingest_display import UploadDisplay

        feed = _UploadFeed(UploadDisplay(options.current().display_mode()) if plan.files else None)
        ns_name = args.namespace or (session.namespace_name if session is not None else None)
        try:
            result = runner.run_plan(
                client,
                plan,
                bucket,
                namespace=client.config.namespace,
                namespace_name=ns_name,
                concurrency=concurrency,
                force=args.force,
                use_state=args.retry_failed is None,
                metadata_provenance=prov,
                state=runner.IngestState(opts_state_path()),
                server_id=server_id(session) if session is not None else None,
                on_progress=feed,
                bucket_label=bucket_ref,
            )
        except KeyboardInterrupt:
            feed.finish(interrupted=True)
            print(
                "Interrupted: files confirmed so far are kept and recorded; uploads in flight were abandoned. "
                "Re-run the cell to resume (already ingested files are skipped).",
                file=sys.stderr,
            )
            raise
        except runner.IngestError as exc:
            raise IngestRunError(str(exc)) from None
        except errors.MixpeekError as exc:
            raise IngestRunError(f"ingest into {bucket_ref!r} stopped: {exc}") from None
        feed.finish(result.upload)
        return result

    def _wait(self, args: Any, result: IngestResult, strict: bool, collection: CollectionRun | None) -> None:
        """``--wait``: until processing ended; what did not complete raises (strict) or is listed."""
        from mixpeek_magics.client import errors
        from mixpeek_magics.ingest.runner import IngestFailedError
        from mixpeek_magics.tracking import WatchTimeout

        try:
            result.wait()
        except (IngestFailedError, WatchTimeout) as exc:  # WatchTimeout: gave up waiting, the result stays usable
            bind(self.shell, args.output, result)
            raise IngestRunError(str(exc)) from None
        lines = _unfinished(result)
        if lines and strict:
            bind(self.shell, args.output, result)
            raise IngestRunError(
                f"{len(lines)} item(s) or task(s) did not complete (strict mode; the result is in "
                f"{args.output or 'the -o variable'}, failures in result.failures):\n" + summarize(lines, 20)
            )
        if lines:
            print(
                f"Warning: {len(lines)} item(s) failed; the rest were ingested (--strict or "
                f"%config MixpeekMagics.strict = True makes this an error):\n"
                + summarize(lines, 20, more_hint=" (see result.failures)"),
                file=sys.stderr,
            )
        if collection is not None:
            try:
                print(collection.finish(result))
            except errors.MixpeekError as exc:
                raise IngestRunError(f"collection {args.collection!r}: {exc}") from None

    def _raise_for_failed_syncs(self, args: Any, result: IngestResult) -> None:
        """Strict mode without ``--wait``: a sync that could not be created is an error."""
        failed_syncs = [i for i in result.items if i.status == "failed" and i.kind not in ("file", "url")]
        if failed_syncs:
            bind(self.shell, args.output, result)
            raise IngestRunError(
                f"{len(failed_syncs)} sync(s) could not be created (strict mode):\n"
                + summarize([f"{i.source}: {i.error}" for i in failed_syncs], 20)
            )


def _checked_options(args: Any, body: str) -> tuple[str, dict[str, Any], int]:
    """The cell's bucket, ``--metadata`` and concurrency; a UsageError for options that are
    wrong or do not go together (before anything is read or sent)."""
    opts = options.current()
    bucket = args.bucket or opts.default_bucket
    if not bucket:
        raise UsageError("%%ingest needs --bucket NAME (or %config MixpeekMagics.default_bucket = 'NAME')")
    if args.create_bucket:  # a name the URL cannot carry back would be created and never found
        from mixpeek_magics.client.names import check_name

        try:
            check_name(bucket, "bucket")
        except ValueError as exc:
            raise UsageError(f"--bucket: {exc}") from None
    metadata: dict[str, Any] = {}
    if args.metadata:
        try:
            metadata = json.loads(args.metadata)
        except ValueError as exc:
            raise UsageError(f"--metadata is not valid JSON: {exc}") from None
        if not isinstance(metadata, dict):
            raise UsageError('--metadata must be a JSON object, e.g. \'{"campaign": "q3"}\'')
    concurrency: int = args.concurrency if args.concurrency is not None else opts.concurrency
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    _check_sources(args, body)
    return bucket, metadata, concurrency


def _check_sources(args: Any, body: str) -> None:
    """One kind of source (cell lines, --frame, --retry-failed), and the options that go with it."""
    given = [bool(body.strip()), args.frame is not None, args.retry_failed is not None]
    if sum(given) > 1:
        raise UsageError("use one source at a time: cell lines, --frame, or --retry-failed")
    if not any(given):
        raise UsageError(
            "nothing to ingest: write one source per line in the cell body "
            "(or use --frame DF --path-col COL, or --retry-failed)"
        )
    if args.extractor and not args.collection:
        raise UsageError("--extractor goes with --collection NAME")
    if (args.path_col or args.metadata_cols) and args.frame is None:
        raise UsageError("--path-col / --metadata-cols go with --frame DF")
    if args.frame is not None and not args.path_col:
        raise UsageError("--frame needs --path-col COLUMN (the file path or URL of each row)")


class _UploadFeed:
    """Hands the upload's counters to its display (``on_progress`` of ``run_plan``). The
    display starts once a file is known to need uploading: files the upload finds
    already ingested while it hashes them show no progress bar, only the final line."""

    def __init__(self, display: UploadDisplay | None) -> None:
        self.display = display
        self.stats: UploadStats | None = None
        self.started = False
        self.said_waiting = False

    def __call__(self, stats: UploadStats) -> None:
        self.stats = stats
        if stats.left_to_others and not self.said_waiting:
            self.said_waiting = True
            print(
                f"Another run made {stats.left_to_others} of these objects and has not submitted them yet: "
                f"leaving them to it for up to {stats.left_wait_seconds:.0f}s (submitted here if it stops first)",
                flush=True,
            )
        if self.display is None:
            return
        if self.started:
            self.display.update(stats)
        elif stats.files_total > stats.unchecked:
            self.started = True
            self.display.start(stats)

    def finish(self, stats: UploadStats | None = None, *, interrupted: bool = False) -> None:
        """The final line (``stats``: the run's; by default the last ones seen)."""
        if self.display is not None and self.stats is not None:
            self.display.finish(stats or self.stats, interrupted=interrupted)


def _resolve_bucket(args: Any, client: Any, bucket_ref: str, plan: Plan) -> Bucket:
    from mixpeek_magics.client import errors
    from mixpeek_magics.ingest import runner

    try:
        bucket: Bucket = runner.resolve_bucket(client, bucket_ref, create=args.create_bucket, plan=plan)
    except runner.IngestError as exc:
        raise IngestRunError(str(exc)) from None
    except errors.MixpeekError as exc:
        raise IngestRunError(f"cannot use bucket {bucket_ref!r}: {exc}") from None
    return bucket


def _show_board(args: Any, client: Any, result: IngestResult, context: dict[str, Any]) -> None:
    """The task board under the cell, watching the run's tasks."""
    from mixpeek_magics.notebook.display import make_display, show

    opts = options.current()
    # with --wait the failed items are listed once, in the warning under the board
    board = make_display(
        mode=opts.display_mode(),
        on_cancel=lambda tid: client.tasks.kill(tid),
        failure_hint="listed below" if args.wait else None,
    )
    show(board)
    handle = result.watch(observers=[board], journal=opts.journal(), policy=opts.poll_policy(), context=context)
    if handle is not None:
        handle.display = board


def _unfinished(result: IngestResult) -> list[str]:
    """A line per failed item and per task that vanished, once the run's tasks ended."""
    fails = result.failure_records()
    gone = [s for s in (result.handle.snapshots if result.handle is not None else []) if s.status == "UNKNOWN"]
    lines = [f"{f['source'] or f['object_id'] or f['task_id']}: {f['error']}" for f in fails]
    return lines + [f"task {s.task_id}: {s.error or 'vanished'}" for s in gone]


def _journal_confirm_tasks(client: Any, result: IngestResult, journal: Any, context: dict[str, Any]) -> None:
    """The upload-confirm tasks the server ran for this ingest go into the journal with
    its cell and label, so ``%mixpeek_tasks`` shows which ingest they belong to (nobody
    watches them: the upload waited for each)."""
    ids = list(result.confirm_tasks)
    if not ids or journal is None:
        return
    import sqlite3

    from mixpeek_magics.client import errors
    from mixpeek_magics.tracking.snapshot import TaskSnapshot

    label = f"{context.get('label') or '%%ingest'}: upload confirm"
    rows = []
    try:
        for i in range(0, len(ids), 100):
            chunk = ids[i : i + 100]
            page = client.tasks.list(
                filters={"AND": [{"field": "task_id", "operator": "in", "value": chunk}]}, limit=len(chunk)
            )
            for task in page.items:
                snap = TaskSnapshot(
                    task.task_id, task.status, task_type=task.task_type, label=label, bucket_id=result.bucket_id
                )
                rows.append((snap, {"bucket_id": result.bucket_id}, False))
        journal.record_many(rows, context, base_url=client.config.base_url, namespace=client.config.namespace)
    except (errors.MixpeekError, OSError, sqlite3.Error):
        pass  # a label, nothing more: the ingest itself went through


def _collection_step(args: Any, client: Any, bucket: Any, plan: Any) -> Any:
    """``--collection``: find or create the collection on the bucket (before anything is uploaded)."""
    from mixpeek_magics.client import errors
    from mixpeek_magics.ingest.collections import CollectionRun
    from mixpeek_magics.ingest.runner import IngestError

    try:
        run = CollectionRun.start(client, args.collection, bucket, extractor=args.extractor, plan=plan)
    except IngestError as exc:
        raise IngestRunError(str(exc)) from None
    except errors.MixpeekError as exc:
        raise IngestRunError(f"cannot use collection {args.collection!r}: {exc}") from None
    print(run.started_line())
    return run


def _shown(item: Any) -> str:
    """A file's path relative to the working directory when it is below it (easier to read)."""
    if item.kind != "file":
        return item.source
    try:
        rel = os.path.relpath(item.source)
    except ValueError:
        return item.source
    return item.source if rel.startswith("..") else rel


def opts_state_path() -> str | None:
    return options.current().ingest_state_path


def server_id(session: Any) -> str:
    """Identity of the server for the ingest state: the organization (stable across local restarts)."""
    return f"org:{session.organization_id}"


def _batch_of_task(state: Any, task_id: str) -> tuple[str, str] | None:
    """(bucket id, batch id) this machine submitted ``task_id`` with, from the ingest state."""
    import sqlite3

    if not state.path.exists():
        return None
    con = sqlite3.connect(state.path)
    try:
        row = con.execute(
            "SELECT bucket_id, batch_id FROM items WHERE task_id=? AND batch_id IS NOT NULL LIMIT 1", (task_id,)
        ).fetchone()
    except sqlite3.Error:
        row = None
    finally:
        con.close()
    return (row[0], row[1]) if row else None


def _sources_for_objects(state: Any, object_ids: list[Any]) -> dict[str, str]:
    import sqlite3

    ids = [o for o in object_ids if o]
    if not ids or not state.path.exists():
        return {}
    con = sqlite3.connect(state.path)
    try:
        q = f"SELECT object_id, source FROM items WHERE object_id IN ({','.join('?' * len(ids))})"
        return {oid: src for oid, src in con.execute(q, ids)}
    finally:
        con.close()
