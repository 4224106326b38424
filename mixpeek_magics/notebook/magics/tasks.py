"""``%mixpeek_watch`` (a live board for existing tasks) and ``%mixpeek_tasks`` (task history)."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from mixpeek_magics.notebook import session as S
from mixpeek_magics.notebook.magics import options
from mixpeek_magics.notebook.magics._common import bind, parse, strict_args, summarize


class WatchError(S.MagicError):
    label = "MixpeekWatchError"


@magics_class
class TaskMagics(Magics):
    @magic_arguments()
    @argument("task_ids", nargs="*", help="Task ids to watch.")
    @argument(
        "--unfinished",
        action="store_true",
        help="Re-attach to every task the journal saw unfinished on this server (e.g. after a kernel restart).",
    )
    @argument("--wait", action="store_true", help="Block until all are finished; FAILED tasks raise.")
    @argument("-o", "--output", default=None, metavar="VAR", help="Bind the watch handle to VAR.")
    @strict_args
    @line_magic
    def mixpeek_watch(self, line: str = "") -> Any:
        """Show a live progress board for existing tasks.

        Examples::

            %mixpeek_watch task_abc123 task_def456
            %mixpeek_watch --unfinished              # after a kernel restart: pick up where you left
            %mixpeek_watch task_abc123 --wait -o h   # block until done; h is the watch handle

        The board keeps updating while you run other cells; its Cancel buttons kill
        tasks on the server (with a confirmation).
        """
        args = parse(self.mixpeek_watch, line)
        if not args.task_ids and not args.unfinished:
            raise UsageError("give one or more task ids, or --unfinished")
        if args.task_ids and args.unfinished:
            raise UsageError("give task ids or --unfinished, not both")
        client = S.signed_in_client()
        opts = options.current()
        from mixpeek_magics.notebook.display import make_display, show
        from mixpeek_magics.notebook.watch import WARNING_HINT, BucketNames
        from mixpeek_magics.tracking import TaskFailedError, WatchTimeout, watch

        journal = opts.journal()
        ids = list(args.task_ids)
        if args.unfinished:
            ids = journal.unfinished(base_url=client.config.base_url)
            if not ids:
                print(f"No unfinished tasks in the journal for {client.config.base_url}.")
                return None
        board = make_display(
            mode=opts.display_mode(),
            title=f"{len(ids)} task(s)",
            on_cancel=lambda tid: client.tasks.kill(tid),
            failure_hint=WARNING_HINT if args.wait else None,
        )
        show(board)
        handle = watch(
            ids,
            client=client,
            block=False,
            observers=[BucketNames(board, client)],
            journal=journal,
            policy=opts.poll_policy(),
            context={"cell": getattr(self.shell, "execution_count", None), "source": "%mixpeek_watch " + line.strip()},
        )
        handle.display = board
        bind(self.shell, args.output, handle)
        if args.wait:
            import warnings

            from mixpeek_magics.tracking import PartialFailureWarning

            strict = opts.is_strict(args.strict)
            try:
                with warnings.catch_warnings():
                    if strict:  # said once, by the error below
                        warnings.simplefilter("ignore", PartialFailureWarning)
                    snaps = handle.wait()
            except TaskFailedError as exc:
                raise WatchError(str(exc)) from None
            except WatchTimeout as exc:
                raise WatchError(str(exc)) from None
            odd = [s for s in snaps if s.status in ("UNKNOWN", "COMPLETED_WITH_ERRORS")]
            seen = {s.task_id for s in snaps}
            odd_lines = [f"{s.task_id}: {s.status}" + (f" ({s.error})" if s.error else "") for s in odd]
            odd_lines += [f"{tid}: never seen (unknown task id)" for tid in ids if tid not in seen]
            if odd_lines and strict:
                raise WatchError(
                    f"{len(odd_lines)} task(s) did not complete cleanly (strict mode; the handle "
                    f"is in {args.output or 'the -o variable'}):\n" + summarize(odd_lines, 20)
                )
            gone = [line for line in odd_lines if "COMPLETED_WITH_ERRORS" not in line]
            if gone:
                import sys

                print(
                    f"Warning: {len(gone)} task(s) unknown or vanished (--strict makes this an error):\n"
                    + summarize(gone, 20),
                    file=sys.stderr,
                )
        return None

    @magic_arguments()
    @argument("--status", default=None, help="Only tasks with this status (comma-separated for several).")
    @argument("--type", dest="task_type", default=None, help="Only tasks of this type (comma-separated).")
    @argument("--since", default=None, help='Only tasks first seen since: "30m", "2h", "1d" or an ISO time.')
    @argument("--bucket", default=None, help="Only tasks of this bucket (name or id).")
    @argument("-o", "--output", default=None, metavar="VAR", help="Bind the DataFrame to VAR instead of showing it.")
    @line_magic
    def mixpeek_tasks(self, line: str = "") -> Any:
        """The task history as a pandas DataFrame (server tasks joined with the local journal).

        Examples::

            %mixpeek_tasks
            %mixpeek_tasks --status FAILED --since 2h
            %mixpeek_tasks --type api_buckets_batches_process -o tasks    # the processing of %%ingest's batches
            %mixpeek_tasks --type api_buckets_uploads_batch_confirm       # its upload confirms
            %mixpeek_tasks --status COMPLETED,COMPLETED_WITH_ERRORS --bucket product-shots

        Tasks ``%%ingest`` ran have its cell in ``source_cell``: the processing task it
        watched, and the upload-confirm tasks the server ran for its uploads.
        """
        args = parse(self.mixpeek_tasks, line)
        client = S.signed_in_client()
        opts = options.current()

        def many(value: str | None) -> Any:
            if value is None:
                return None
            parts = [p.strip() for p in value.split(",") if p.strip()]
            return parts[0] if len(parts) == 1 else parts

        if args.status:  # an unknown status would filter everything out: refuse it, naming the valid ones
            from mixpeek_magics.client.statuses import status_value

            try:
                for part in args.status.split(","):
                    if part.strip():
                        status_value(part.strip(), what="--status")
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        from mixpeek_magics.frames import task_history

        try:
            frame = task_history(
                client,
                status=many(args.status),
                task_type=many(args.task_type),
                since=args.since,
                bucket=args.bucket,
                journal=opts.journal_path or None,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if args.output:
            bind(self.shell, args.output, frame)
            return None
        return frame
