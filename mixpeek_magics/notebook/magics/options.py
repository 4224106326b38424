"""``%config MixpeekMagics.<option>``: the magics' settings (a traitlets Configurable).

    %config MixpeekMagics                      # list the options and their values
    %config MixpeekMagics.default_bucket = "product-shots"
    %config MixpeekMagics.concurrency = 4
    %config MixpeekMagics.widgets = False      # text progress instead of widgets

The same values can live in ``ipython_config.py`` (``c.MixpeekMagics.concurrency = 4``).
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Float, Int, Unicode, validate
from traitlets.config import Configurable

from mixpeek_magics.ingest.defaults import DEFAULT_CONCURRENCY

__all__ = ["MixpeekMagics", "current", "install"]


class MixpeekMagics(Configurable):
    """Settings shared by every ``%mixpeek_*`` and ``%%ingest`` magic."""

    default_namespace = Unicode(
        None,
        allow_none=True,
        help="Namespace (name or id) used when %mixpeek_auth / %%ingest get no --namespace (else MIXPEEK_NAMESPACE).",
    ).tag(config=True)
    default_bucket = Unicode(
        None,
        allow_none=True,
        help="Bucket (name or id) %%ingest uses when given no --bucket.",
    ).tag(config=True)
    concurrency = Int(
        DEFAULT_CONCURRENCY,
        help="Files uploaded in parallel by %%ingest (--concurrency overrides).",
    ).tag(config=True)
    poll_max_interval = Float(
        30.0,
        help="Polling cap: the longest pause between two task polls, in seconds (backoff starts at 1 s).",
    ).tag(config=True)
    progress_interval = Float(
        None,
        allow_none=True,
        help="Least seconds between two reads of the running batches' progress (default: 10, the real "
        "service's refresh cadence; the embedded server's progress_refresh_seconds when signed in to it).",
    ).tag(config=True)
    widgets = Bool(
        True,
        help="Show ipywidgets progress boards and prompts where a widget front end can show them; "
        "False: text progress and getpass.",
    ).tag(config=True)
    journal_path = Unicode(
        None,
        allow_none=True,
        help="SQLite file of the task journal (default: MIXPEEK_JOURNAL_PATH or the user data dir).",
    ).tag(config=True)
    ingest_state_path = Unicode(
        None,
        allow_none=True,
        help="SQLite file remembering what %%ingest already uploaded (default: next to the user data dir).",
    ).tag(config=True)
    auth_timeout = Float(10.0, help="Seconds %mixpeek_auth waits for the server to answer.").tag(config=True)
    strict = Bool(
        None,
        allow_none=True,
        help="Waiting magics raise (after binding -o VAR) when work ended COMPLETED_WITH_ERRORS, a sync could "
        "not be created, a task id is unknown or vanished: what makes a headless run fail. Default: on "
        "when headless (nbclient, papermill, nbconvert, CI), else warn once. --strict / --no-strict override.",
    ).tag(config=True)
    unreachable_timeout = Float(
        None,
        allow_none=True,
        help="Seconds a wait keeps reconnecting to a server that is gone before it gives up (the tasks keep "
        "running; the error says how to re-attach). Default: 120 when headless, 900 interactively.",
    ).tag(config=True)

    @validate("concurrency")
    def _check_concurrency(self, proposal: Any) -> int:
        value = proposal["value"]
        if value < 1:
            from traitlets import TraitError

            raise TraitError(f"MixpeekMagics.concurrency must be >= 1 (got {value})")
        return value

    # -- strictness and bounds ------------------------------------------------------
    def is_strict(self, override: bool | None = None) -> bool:
        """``override`` (--strict / --no-strict), else ``strict``, else on when headless."""
        if override is not None:
            return bool(override)
        if self.strict is not None:
            return bool(self.strict)
        from mixpeek_magics.notebook import session

        return session.is_headless()

    def unreachable_limit(self) -> float:
        if self.unreachable_timeout is not None:
            return float(self.unreachable_timeout)
        from mixpeek_magics.notebook import session

        return 120.0 if session.is_headless() else 900.0

    @validate("unreachable_timeout")
    def _check_unreachable(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and not value > 0:
            from traitlets import TraitError

            raise TraitError(f"MixpeekMagics.unreachable_timeout must be > 0 seconds or None (got {value})")
        return value

    @validate("poll_max_interval", "auth_timeout")
    def _check_positive(self, proposal: Any) -> float:
        value = proposal["value"]
        if not value > 0:
            from traitlets import TraitError

            raise TraitError(f"MixpeekMagics.{proposal['trait'].name} must be > 0 (got {value})")
        if proposal["trait"].name == "poll_max_interval" and value < 1.0:
            from traitlets import TraitError

            raise TraitError("MixpeekMagics.poll_max_interval must be >= 1 second (polls start 1 s apart)")
        return value

    # -- derived -----------------------------------------------------------------
    def display_mode(self) -> str:
        return "auto" if self.widgets else "text"

    def journal(self) -> Any:
        """The tracking journal these settings point at."""
        from mixpeek_magics.tracking.journal import Journal, default_journal

        return Journal(self.journal_path) if self.journal_path else default_journal()

    def poll_policy(self) -> Any:
        from mixpeek_magics.tracking.policy import PollPolicy

        interval: float | None = self.progress_interval
        if interval is None:
            interval = 10.0  # the real service refreshes a batch's progress about every 10 s
            try:
                from mixpeek_magics.notebook import session

                s = session.current()
                if s is not None and s.local and session._local_server is not None:
                    interval = float(session._local_server.settings.progress_refresh_seconds)
            except Exception:
                pass
        return PollPolicy(
            maximum=self.poll_max_interval,
            progress_interval=max(0.0, interval),
            unreachable_timeout=self.unreachable_limit(),
        )


_current: MixpeekMagics | None = None


def current() -> MixpeekMagics:
    """The settings of the loaded extension (defaults when it is not loaded)."""
    global _current
    if _current is None:
        _current = MixpeekMagics()
    return _current


def install(shell: Any) -> MixpeekMagics:
    """Create the settings object for ``shell`` and register it with ``%config``."""
    global _current
    if _current is not None and _current in getattr(shell, "configurables", []):
        return _current
    opts = MixpeekMagics(parent=shell)
    configurables = getattr(shell, "configurables", None)
    if configurables is not None:
        configurables[:] = [c for c in configurables if type(c).__name__ != "MixpeekMagics"]
        configurables.append(opts)
    _current = opts
    return opts


def uninstall(shell: Any) -> None:
    global _current
    configurables = getattr(shell, "configurables", None)
    if configurables is not None and _current is not None and _current in configurables:
        configurables.remove(_current)
    _current = None
