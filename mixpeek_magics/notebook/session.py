"""The signed-in Mixpeek session of this kernel, and where the API key comes from.

``%mixpeek_auth`` signs in through :func:`sign_in`; everything else
(``mixpeek_magics.signed_in_client()``, ``%%ingest``, the frames) asks :func:`client`.

Key sources, in order: an explicit key, ``MIXPEEK_API_KEY``, the key saved by
``%mixpeek_auth --save`` (a 0600 file in ``_paths.config_dir()``), then an
interactive prompt (a password widget in a widget front end, ``getpass`` in a
terminal). Headless runs (nbconvert, papermill, CI, no TTY) never prompt.

The key is never printed, logged, put into an exception or a widget's saved
state: it is shown as ``sk_...abcd`` at most.
"""

from __future__ import annotations

import html
import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixpeek_magics import _defaults, _paths

__all__ = [
    "MagicError",
    "NotSignedInError",
    "AuthError",
    "HeadlessError",
    "Session",
    "signed_in_client",
    "current",
    "sign_in",
    "sign_out",
    "sign_in_local",
    "resolve_key",
    "saved_credentials_path",
    "save_key",
    "load_saved_key",
    "forget_saved_key",
    "prompt_mode",
    "is_headless",
    "KeyPrompt",
    "pending_prompt",
]

ENV_API_KEY = "MIXPEEK_API_KEY"
ENV_BASE_URL = "MIXPEEK_BASE_URL"
ENV_NAMESPACE = "MIXPEEK_NAMESPACE"
ENV_HEADLESS = "MIXPEEK_MAGICS_HEADLESS"
_TRUE = {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------- errors


class MagicError(Exception):
    """An error a magic reports as one short block, without a Python traceback.

    IPython shows ``_render_traceback_()`` instead of the traceback; the cell
    still fails (headless runs stop), it just does not drown the message.
    """

    label = "MixpeekError"

    def _render_traceback_(self) -> list[str]:
        lines = str(self).splitlines() or [""]
        return [f"{self.label}: {lines[0]}", *lines[1:]]


class NotSignedInError(MagicError, RuntimeError):
    label = "NotSignedIn"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "not signed in to Mixpeek: run %mixpeek_auth first "
            "(or %mixpeek_auth --local for the embedded local server)"
        )


class AuthError(MagicError):
    label = "MixpeekAuthError"


class HeadlessError(AuthError):
    """No key and no way to ask for one (nbconvert, papermill, CI, no TTY)."""


# --------------------------------------------------------------------------- session


def key_kind(api_key: str, local: bool = False) -> str:
    if local:
        return "local"
    if api_key.startswith("sk_live_"):
        return "live"
    if api_key.startswith("sk_test_"):
        return "test"
    return "unknown"


def mask(api_key: str | None) -> str:
    from mixpeek_magics.client.errors import redact_key

    return redact_key(api_key)


@dataclass
class Session:
    """One signed-in connection: the client and what the server said about it."""

    client: Any
    organization_id: str
    organization_name: str | None
    key_kind: str
    masked_key: str
    base_url: str
    namespace_id: str | None = None
    namespace_name: str | None = None
    local: bool = False

    @property
    def namespace(self) -> str | None:
        return self.namespace_id or self.namespace_name

    def status_line(self) -> str:
        org = f"{self.organization_name} ({self.organization_id})" if self.organization_name else self.organization_id
        if self.namespace_id and self.namespace_name and self.namespace_id != self.namespace_name:
            ns = f"namespace {self.namespace_name} ({self.namespace_id})"
        elif self.namespace:
            ns = f"namespace {self.namespace}"
        else:
            ns = "no namespace (use --namespace)"
        return (
            f"Signed in to Mixpeek: organization {org} · {self.key_kind} key {self.masked_key} · {self.base_url} · {ns}"
        )

    def _repr_html_(self) -> str:
        return f'<span style="color:#2e7d32">✓</span> {html.escape(self.status_line())}'

    def __repr__(self) -> str:
        return self.status_line()


_lock = threading.RLock()
_session: Session | None = None
_local_server: Any = None
pending_prompt: KeyPrompt | None = None


def current() -> Session | None:
    return _session


def signed_in_client() -> Any:
    """The signed-in :class:`~mixpeek_magics.client.Mixpeek` client (``mixpeek_magics.signed_in_client()``)."""
    s = _session
    if s is None:
        raise NotSignedInError()
    return s.client


def sign_out() -> bool:
    """Forget the session (closes its client). True if there was one."""
    global _session
    with _lock:
        old, _session = _session, None
    if old is None:
        return False
    try:
        old.client.close()
    except Exception:
        pass
    return True


# --------------------------------------------------------------------------- saved key


def saved_credentials_path() -> Path:
    return _paths.config_dir() / "credentials.json"


def save_key(api_key: str, base_url: str | None = None) -> Path:
    """Store the key (and its base URL) in a file only the user can read (0600)."""
    path = saved_credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(path.parent, 0o700)
    except OSError:
        pass
    data = json.dumps({"api_key": api_key, "base_url": base_url})
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def load_saved_key() -> tuple[str, str | None] | None:
    """(api_key, base_url) saved by ``--save``, or None."""
    path = saved_credentials_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    key = data.get("api_key") if isinstance(data, dict) else None
    if not isinstance(key, str) or not key:
        return None
    base = data.get("base_url")
    return key, base if isinstance(base, str) and base else None


def forget_saved_key() -> bool:
    try:
        saved_credentials_path().unlink()
        return True
    except FileNotFoundError:
        return False


def resolve_key(explicit: str | None = None) -> tuple[str | None, str | None, str | None]:
    """(key, where it came from, saved base URL) from the non-interactive sources."""
    if explicit:
        return explicit, "argument", None
    env = os.environ.get(ENV_API_KEY, "").strip()
    if env:
        return env, "env", None
    saved = load_saved_key()
    if saved:
        return saved[0], "saved", saved[1]
    return None, None, None


# --------------------------------------------------------------------------- prompting


def is_headless() -> bool:
    """True when nobody can answer a prompt (env says so, or no TTY / no stdin)."""
    return prompt_mode() is None


def _shell() -> Any:
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def _stdin_is_tty() -> bool:
    try:
        return bool(sys.stdin) and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def prompt_mode(widgets: bool = True) -> str | None:
    """``"widget"``, ``"getpass"`` or None (headless: never prompt).

    Headless: ``CI`` / ``MIXPEEK_MAGICS_HEADLESS`` set; a kernel whose client
    cannot answer input requests (nbconvert, nbclient, papermill send
    ``allow_stdin=False``); a terminal without a TTY.
    """
    for name in (ENV_HEADLESS, "CI"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return None
    shell = _shell()
    if shell is not None and any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__):
        kernel = getattr(shell, "kernel", None)
        if not getattr(kernel, "_allow_stdin", False):
            return None
        if widgets:
            from mixpeek_magics.notebook.display import in_widget_kernel, widgets_disabled_by_env

            if in_widget_kernel() and not widgets_disabled_by_env():
                return "widget"
        return "getpass"
    return "getpass" if _stdin_is_tty() else None


def headless_message() -> str:
    return (
        f"no Mixpeek API key and no way to ask for one in this headless run: set {ENV_API_KEY} "
        f"(or run %mixpeek_auth --save once interactively, or use %mixpeek_auth --local)"
    )


class KeyPrompt:
    """Password field + "Sign in" button. The key is read once, then cleared from the
    widget at once (it never stays in widget state); after a successful sign-in
    the input is closed and only the status line remains."""

    def __init__(self, on_key: Callable[[str], Session], intro: str | None = None) -> None:
        import ipywidgets as W

        self._on_key = on_key
        self.session: Session | None = None
        self.error: str | None = None
        self.password = _secret_field()
        self.button = W.Button(description="Sign in", button_style="primary", icon="sign-in")
        self.status = W.HTML(value="")
        self.inputs = W.HBox([self.password, self.button])
        intro = intro or (
            f"Paste your Mixpeek API key (it is not stored in the notebook; set {ENV_API_KEY} to skip this prompt)."
        )
        self.intro = W.HTML(value=html.escape(intro))
        self.box = _PromptBox([self.intro, self.inputs, self.status])
        self.button.on_click(lambda _b: self.submit())

    @property
    def done(self) -> bool:
        return self.session is not None

    def submit(self) -> Session | None:
        """Read the key, clear it from the widget, sign in; show the one-line status."""
        key = (self.password.value or "").strip()
        self.password.value = ""
        if not key:
            self.status.value = '<span style="color:#c62828">Enter an API key first.</span>'
            return None
        self.status.value = "Signing in…"
        try:
            session = self._on_key(key)
        except MagicError as exc:
            self.error = str(exc)
            self.status.value = f'<span style="color:#c62828">✗ {html.escape(str(exc))}</span>'
            return None
        finally:
            key = ""  # noqa: F841 - drop our reference
        self.session = session
        self.error = None
        self.status.value = session._repr_html_()
        self.box.final_text = session.status_line()
        for w in (self.password, self.button, self.inputs, self.intro):
            w.close()
        self.box.children = (self.status,)
        return session


def _secret_field() -> Any:
    """A Password field whose value is never echoed back to front ends (ipywidgets 8
    echoes every front-end update to all front ends by default)."""
    import ipywidgets as W
    from traitlets import Unicode

    class SecretField(W.Password):
        value = Unicode("", help="The key as typed; read once and cleared").tag(sync=True, echo_update=False)

    return SecretField(value="", placeholder="sk_...", description="API key")


def _PromptBox(children: list) -> Any:  # noqa: N802 - a widget factory
    import ipywidgets as W

    from mixpeek_magics.notebook.fallbacks import key_prompt_without_widgets

    class PromptBox(W.VBox):
        final_text: str | None = None

        def _repr_mimebundle_(self, **kwargs: Any) -> dict:
            data = super()._repr_mimebundle_(**kwargs) or {}
            # a front end without widgets shows this text: it says how to sign in without the field
            data["text/plain"] = self.final_text or key_prompt_without_widgets(ENV_API_KEY)
            return data

    return PromptBox(children)


def ask_with_getpass() -> str:
    import getpass

    try:
        return getpass.getpass("Mixpeek API key: ").strip()
    except (EOFError, KeyboardInterrupt):
        raise AuthError("sign-in cancelled: no API key entered") from None


# --------------------------------------------------------------------------- sign-in


def _validate(api_key: str, base_url: str | None, timeout: float) -> tuple[Any, Any]:
    """A short-timeout client and the organization, or an AuthError with one clear line."""
    from mixpeek_magics.client import Mixpeek, errors

    try:
        probe = Mixpeek(api_key=api_key, base_url=base_url, timeout=timeout, max_retry_seconds=0.0)
    except errors.ConfigurationError as exc:
        raise AuthError(str(exc)) from None
    where = probe.config.base_url
    masked = mask(api_key)
    try:
        org = probe.organization.get()
    except errors.AuthenticationError:
        probe.close()
        raise AuthError(
            f"API key {masked} was rejected by {where} (401 Unauthorized): check the key, "
            f"or create a new one in the Mixpeek dashboard"
        ) from None
    except errors.PermissionDeniedError:
        probe.close()
        raise AuthError(f"API key {masked} may not read the organization at {where} (403 Forbidden)") from None
    except errors.NotFoundError:
        probe.close()
        raise AuthError(
            f"{where} is not a Mixpeek API (GET /v1/organizations answered 404 Not Found): "
            f"check --base-url / {ENV_BASE_URL}"
        ) from None
    except errors.ResponseFormatError:
        probe.close()
        raise AuthError(
            f"{where} is not a Mixpeek API (GET /v1/organizations did not answer JSON, "
            f"e.g. an HTML page): check --base-url / {ENV_BASE_URL}"
        ) from None
    except errors.APITimeoutError:
        probe.close()
        raise AuthError(f"{where} did not answer within {timeout:g} s: check --base-url and your network") from None
    except errors.APIConnectionError as exc:
        probe.close()
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuthError(f"cannot reach {where}: {errors.scrub(reason, api_key)}") from None
    except errors.APIStatusError as exc:
        probe.close()
        raise AuthError(
            f"{where} answered HTTP {exc.status_code} to GET /v1/organizations: {errors.scrub(str(exc), api_key)}"
        ) from None
    except errors.MixpeekError as exc:
        probe.close()
        raise AuthError(errors.scrub(str(exc), api_key)) from None
    return probe, org


def _resolve_namespace(probe: Any, namespace: str, create: bool) -> tuple[str | None, str]:
    from mixpeek_magics.client import errors

    try:
        ns = probe.namespaces.get(namespace)
        return ns.namespace_id, ns.namespace_name
    except errors.NotFoundError:
        pass
    except errors.MixpeekError as exc:
        raise AuthError(f"cannot look up namespace {namespace!r}: {exc}") from None
    if create:
        from mixpeek_magics.client.names import check_name

        try:
            check_name(namespace, "namespace")
        except ValueError as exc:
            raise AuthError(str(exc)) from None
        try:
            ns = probe.namespaces.create(namespace, feature_extractors=[])
        except errors.ConflictError:  # created meanwhile (another kernel): use that one
            try:
                ns = probe.namespaces.get(namespace)
            except errors.MixpeekError as exc:
                raise AuthError(f"cannot create namespace {namespace!r}: {exc}") from None
        except errors.MixpeekError as exc:
            raise AuthError(f"cannot create namespace {namespace!r}: {exc}") from None
        return ns.namespace_id, ns.namespace_name
    try:
        names = [n.namespace_name for n in probe.namespaces.iter(max_items=50)]
    except errors.MixpeekError:
        names = []
    known = ", ".join(repr(n) for n in names[:20]) + (" …" if len(names) > 20 else "")
    hint = f"available: {known}" if names else "this organization has no namespaces yet"
    raise AuthError(f"namespace {namespace!r} not found ({hint}); add --create-namespace to create it")


def sign_in(
    api_key: str,
    base_url: str | None = None,
    namespace: str | None = None,
    *,
    create_namespace: bool = False,
    save: bool = False,
    local: bool = False,
    timeout: float = 10.0,
) -> Session:
    """Validate ``api_key`` against the server, resolve the namespace, and make it the session.

    On any failure the previous session (if any) is kept and an :class:`AuthError`
    with one line is raised.
    """
    global _session
    from mixpeek_magics.client import Mixpeek

    api_key = (api_key or "").strip()
    if not api_key:
        raise AuthError("empty API key")
    probe, org = _validate(api_key, base_url, timeout)
    try:
        ns_id = ns_name = None
        if namespace:
            ns_id, ns_name = _resolve_namespace(probe, namespace, create_namespace)
        cfg = probe.config
        new_client = Mixpeek(api_key=api_key, base_url=cfg.base_url, namespace=ns_id or ns_name)
    finally:
        probe.close()
    session = Session(
        client=new_client,
        organization_id=org.organization_id,
        organization_name=org.organization_name,
        key_kind=key_kind(api_key, local),
        masked_key=mask(api_key),
        base_url=new_client.config.base_url,
        namespace_id=ns_id,
        namespace_name=ns_name,
        local=local,
    )
    if save:
        save_key(api_key, None if local else new_client.config.base_url)
    with _lock:
        _session = session
    # the previous client is left open: a notebook may still hold it (c = mixpeek_magics.signed_in_client())
    return session


def local_server() -> Any:
    """The embedded local server of this process, started on first use (free port)."""
    global _local_server
    with _lock:
        srv = _local_server
        if srv is not None and srv.running:
            return srv
        from mixpeek_magics.local import LocalServer, LocalSettings

        # MIXPEEK_LOCAL_* variables tune it (e.g. MIXPEEK_LOCAL_PACE_SECONDS for visible progress)
        srv = LocalServer(data_dir=_paths.local_server_dir(), port=0, settings=LocalSettings.from_env()).start()
        _local_server = srv
        return srv


def stop_local_server() -> None:
    global _local_server
    with _lock:
        srv, _local_server = _local_server, None
    if srv is not None:
        srv.stop()


def sign_in_local(namespace: str | None = None, *, create_namespace: bool = False, timeout: float = 10.0) -> Session:
    srv = local_server()
    return sign_in(srv.api_key, srv.base_url, namespace, create_namespace=create_namespace, local=True, timeout=timeout)


# Frames and other lower layers reach the signed-in client through layer 0.
_defaults.set_client_provider(signed_in_client)
