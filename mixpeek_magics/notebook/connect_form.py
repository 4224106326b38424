"""The storage-connection form: pick a provider, enter credentials, "Test & save",
then configure a bucket sync from the saved connection.

``connect(client=None, *, on_saved=None) -> ConnectionForm`` is what
``mixpeek_magics.connect()`` and ``%mixpeek_connect`` return. The form builds the
request body with :mod:`mixpeek_magics.client.credentials` (validation happens
there, before anything is sent), hands it to a ``submit`` callable and clears
every secret widget after every attempt, so no secret survives in widget state,
reprs or saved notebooks.

All side effects are injectable for UI tests without a kernel or server:
``submit(body) -> connection``, ``list_folders(connection_id, path) -> folders``,
``list_buckets() -> buckets``, ``create_sync(bucket, body) -> sync``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mixpeek_magics._extras import require

require("notebook", "ipywidgets")

import ipywidgets as widgets

from mixpeek_magics.client import credentials as cr
from mixpeek_magics.notebook.fallbacks import CONNECT_WITHOUT_WIDGETS, SYNC_WITHOUT_WIDGETS

__all__ = ["CONNECT_WITHOUT_WIDGETS", "PROVIDERS", "SYNC_WITHOUT_WIDGETS", "ConnectionForm", "SyncForm", "connect"]


#: (label, key) of the provider picker.
PROVIDERS: tuple[tuple[str, str], ...] = (
    ("Amazon S3", "s3"),
    ("S3-compatible (MinIO, …)", "s3_compatible"),
    ("Tigris", "tigris"),
    ("Google Drive", "google_drive"),
)
_CREDENTIAL_TYPES: dict[str, tuple[tuple[str, str], ...]] = {
    "s3": (("Access key", "access_key"), ("IAM role", "iam_role")),
    "s3_compatible": (("Access key", "access_key"),),
    "tigris": (("Access key", "access_key"),),
    "google_drive": (("Service account", "service_account"), ("OAuth", "oauth")),
}
_DEFAULT_REGION = {"s3": "us-east-1", "s3_compatible": "us-east-1", "tigris": "auto"}

_STYLE = {"description_width": "170px"}


def _wide() -> widgets.Layout:
    return widgets.Layout(width="560px")


_ERROR_CSS = "color:#b3261e;font-size:0.9em;margin-left:176px"


def _text(description: str, placeholder: str = "") -> widgets.Text:
    return widgets.Text(description=description, placeholder=placeholder, style=_STYLE, layout=_wide())


def _password(description: str, placeholder: str = "") -> widgets.Password:
    return widgets.Password(description=description, placeholder=placeholder, style=_STYLE, layout=_wide())


def _textarea(description: str, placeholder: str, height: str) -> widgets.Textarea:
    return widgets.Textarea(
        description=description,
        placeholder=placeholder,
        style=_STYLE,
        layout=widgets.Layout(width="560px", height=height),
    )


def _text_of(obj: Any) -> str:
    """A short user-facing message for an exception (scrubbed by the caller)."""
    msg = str(obj).strip()
    return msg or type(obj).__name__


def _get(obj: Any, *names: str) -> Any:
    for n in names:
        if isinstance(obj, Mapping):
            if obj.get(n) is not None:
                return obj[n]
        elif getattr(obj, n, None) is not None:
            return getattr(obj, n)
    return None


class _Field:
    """One input plus the error line shown right under it."""

    __slots__ = ("name", "input", "error", "box", "secret")

    def __init__(
        self, name: str, input_widget: widgets.Widget, *, secret: bool = False, extra: Iterable[widgets.Widget] = ()
    ):
        self.name = name
        self.input = input_widget
        self.secret = secret
        self.error = widgets.HTML(value="", layout=widgets.Layout(display="none"))
        self.box = widgets.VBox([input_widget, *extra, self.error])

    @property
    def visible(self) -> bool:
        return self.box.layout.display != "none"

    def show(self, visible: bool) -> None:
        self.box.layout.display = None if visible else "none"

    def set_error(self, message: str | None) -> None:
        if message:
            self.error.value = f'<div style="{_ERROR_CSS}">⚠ {html.escape(message)}</div>'
            self.error.layout.display = None
        else:
            self.error.value = ""
            self.error.layout.display = "none"


class _FormBase(widgets.VBox):
    """Shared bookkeeping: named fields, per-field errors and a status line."""

    def _init_base(self) -> None:
        self._fields: dict[str, _Field] = {}
        self._errors: dict[str, str] = {}
        self.status = widgets.HTML(value="")
        self._status_text = ""

    def _add(
        self, name: str, w: widgets.Widget, *, secret: bool = False, extra: Iterable[widgets.Widget] = ()
    ) -> _Field:
        f = _Field(name, w, secret=secret, extra=extra)
        self._fields[name] = f
        return f

    @property
    def fields(self) -> dict[str, widgets.Widget]:
        """Field name -> input widget (for programmatic filling and tests)."""
        return {n: f.input for n, f in self._fields.items()}

    def visible_fields(self) -> list[str]:
        return [n for n, f in self._fields.items() if f.visible]

    def field_errors(self) -> dict[str, str]:
        return dict(self._errors)

    def status_text(self) -> str:
        """The status line as plain text."""
        return self._status_text

    #: what a front end without widgets shows instead of the form
    fallback_text = ""

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = self.fallback_text or repr(self)
        return data

    def _set_status(self, text: str, kind: str = "info") -> None:
        color = {"info": "#555", "ok": "#1e7d32", "error": "#b3261e"}[kind]
        self._status_text = text
        self.status.value = f'<div style="color:{color};white-space:pre-wrap">{html.escape(text)}</div>' if text else ""

    def _clear_errors(self) -> None:
        self._errors.clear()
        for f in self._fields.values():
            f.set_error(None)

    def _show_errors(self, errors: Mapping[str, str]) -> None:
        for name, msg in errors.items():
            if name in self._errors:
                self._errors[name] += "; " + msg
            else:
                self._errors[name] = msg
            if name in self._fields:
                self._fields[name].set_error(self._errors[name])


# ---------------------------------------------------------------------------
# the connection form
# ---------------------------------------------------------------------------


class ConnectionForm(_FormBase):
    """``ipywidgets.VBox`` with the connection fields, "Test & save" and, once
    saved, a :class:`SyncForm`.

    Parameters are all optional; without ``submit`` the form calls
    ``client.connections.create(**body)`` (the notebook session's client when
    ``client`` is None).
    """

    fallback_text = CONNECT_WITHOUT_WIDGETS

    def __init__(
        self,
        client: Any = None,
        *,
        submit: Callable[[dict], Any] | None = None,
        on_saved: Callable[[Any], Any] | None = None,
        list_folders: Callable[[str, str], Any] | None = None,
        list_buckets: Callable[[], Any] | None = None,
        create_sync: Callable[[str, dict], Any] | None = None,
        on_sync_created: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._init_base()
        self._client = client
        self._submit = submit
        self._on_saved = on_saved
        self._list_folders = list_folders
        self._list_buckets = list_buckets
        self._create_sync = create_sync
        self._on_sync_created = on_sync_created
        self._busy = False
        self.connection: Any = None
        self.connection_id: str | None = None
        self.sync_form: SyncForm | None = None
        self._build()

    # ---- construction -------------------------------------------------------------

    def _build(self) -> None:
        self._add(
            "provider",
            widgets.Dropdown(options=list(PROVIDERS), value="s3", description="Provider", style=_STYLE, layout=_wide()),
        )
        self._add(
            "credential_type",
            widgets.ToggleButtons(options=list(_CREDENTIAL_TYPES["s3"]), description="Authentication", style=_STYLE),
        )
        self._add("name", _text("Name", "e.g. Production S3 bucket"))
        self._add("description", _text("Description", "optional"))
        self._add_s3_fields()
        self._add_drive_fields()
        self._add("metadata", _textarea("Metadata (JSON)", '{"team": "ml"}', "60px"))

        self.save_button = widgets.Button(description="Test & save", button_style="primary", icon="plug")
        self.save_button.on_click(lambda _b: self.test_and_save())

        f = self._fields
        f["provider"].input.observe(self._on_provider, names="value")
        f["credential_type"].input.observe(lambda _c: self._update_visibility(), names="value")
        f["endpoint_url"].input.observe(self._on_endpoint, names="value")

        self.children = (
            widgets.HTML("<b>Connect a storage provider</b>"),
            *(fl.box for fl in self._fields.values()),
            widgets.HBox([self.save_button]),
            self.status,
        )
        self._update_visibility()

    def _add_s3_fields(self) -> None:
        """S3, S3-compatible storage and Tigris: endpoint, keys or role, region, bucket."""
        T, P = _text, _password
        self._add("endpoint_url", T("Endpoint URL", "https://minio.example.com"))
        self._add("use_ssl", widgets.Checkbox(value=True, description="Use SSL (https)", style=_STYLE, indent=True))
        self._add(
            "verify_ssl", widgets.Checkbox(value=True, description="Verify SSL certificates", style=_STYLE, indent=True)
        )
        self._add("access_key_id", T("Access key ID", "AKIA…"))
        self._add("secret_access_key", P("Secret access key"), secret=True)
        self._add("session_token", P("Session token", "only for temporary (ASIA…) keys"), secret=True)
        self._add("role_arn", T("Role ARN", "arn:aws:iam::123456789012:role/mixpeek-storage-sync-role"))
        self._add("external_id", T("External ID", "must match sts:ExternalId in the trust policy"))
        self._add("region", T("Region", "us-east-1"))
        self._fields["region"].input.value = "us-east-1"
        self._add("bucket", T("Bucket", "optional: bucket to sync from later"))

    def _add_drive_fields(self) -> None:
        """Google Drive: a service account's key (uploaded or pasted) or OAuth credentials."""
        T, P = _text, _password
        upload = widgets.FileUpload(accept=".json,application/json", multiple=False, description="Key file (.json)")
        self._add(
            "service_account_file",
            upload,
            secret=True,
            extra=[
                widgets.HTML(
                    '<span style="margin-left:8px;color:#555">'
                    "upload the service account's JSON key, or paste it below</span>"
                )
            ],
        )
        self._add(
            "service_account_json", _textarea("…or paste JSON", '{"type": "service_account", …}', "90px"), secret=True
        )
        self._add("impersonate_user", T("Impersonate user", "optional: user@your-domain.com (domain-wide delegation)"))
        self._add("client_id", T("OAuth client ID", "….apps.googleusercontent.com"))
        self._add("client_secret", P("OAuth client secret"), secret=True)
        self._add("refresh_token", P("Refresh token"), secret=True)
        self._add("shared_drive_id", T("Shared drive ID", "optional: 0A…"))

    # ---- switching ------------------------------------------------------------------

    @property
    def provider(self) -> str:
        return self._fields["provider"].input.value

    @property
    def credential_type(self) -> str:
        return self._fields["credential_type"].input.value

    def _visible_for(self, provider: str, cred: str) -> set[str]:
        names = {"provider", "name", "description", "metadata"}
        if len(_CREDENTIAL_TYPES[provider]) > 1:
            names.add("credential_type")
        if provider in ("s3", "s3_compatible", "tigris"):
            names |= {"region", "bucket"}
            if cred == "iam_role":
                names |= {"role_arn", "external_id"}
            else:
                names |= {"access_key_id", "secret_access_key"}
                if provider != "tigris":
                    names.add("session_token")
            if provider in ("s3_compatible", "tigris"):
                names.add("endpoint_url")
            if provider == "s3_compatible":
                names |= {"use_ssl", "verify_ssl"}
        else:
            names.add("shared_drive_id")
            if cred == "oauth":
                names |= {"client_id", "client_secret", "refresh_token"}
            else:
                names |= {"service_account_file", "service_account_json", "impersonate_user"}
        return names

    def _update_visibility(self) -> None:
        visible = self._visible_for(self.provider, self.credential_type)
        for name, fl in self._fields.items():
            fl.show(name in visible)
        self._fields["access_key_id"].input.placeholder = "AKIA…" if self.provider == "s3" else "access key id"

    def _on_provider(self, change: dict) -> None:
        old, new = change["old"], change["new"]
        ct = self._fields["credential_type"].input
        ct.options = list(_CREDENTIAL_TYPES[new])
        ct.value = _CREDENTIAL_TYPES[new][0][1]
        region = self._fields["region"].input
        if new in _DEFAULT_REGION and region.value.strip() in ("", *_DEFAULT_REGION.values()):
            region.value = _DEFAULT_REGION[new]
        endpoint = self._fields["endpoint_url"].input
        if new == "tigris" and not endpoint.value.strip():
            endpoint.value = cr.TIGRIS_DEFAULT_ENDPOINT
        elif old == "tigris" and endpoint.value.strip() == cr.TIGRIS_DEFAULT_ENDPOINT:
            endpoint.value = ""
        self._clear_errors()
        self._update_visibility()

    def _on_endpoint(self, change: dict) -> None:
        url = (change["new"] or "").strip().lower()
        if url.startswith("https://"):
            self._fields["use_ssl"].input.value = True
            self._fields["verify_ssl"].input.value = True
        elif url.startswith("http://"):
            self._fields["use_ssl"].input.value = False
            self._fields["verify_ssl"].input.value = False

    # ---- values -----------------------------------------------------------------------

    def _v(self, name: str) -> Any:
        v = self._fields[name].input.value
        return v.strip() if isinstance(v, str) else v

    def _opt(self, name: str) -> str | None:
        v = self._v(name)
        return v or None

    def _read_metadata(self, errors: dict[str, str]) -> dict | None:
        text = self._v("metadata")
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            errors["metadata"] = f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
            return None
        if not isinstance(value, dict):
            errors["metadata"] = 'must be a JSON object, e.g. {"team": "ml"}'
            return None
        return value

    def _read_service_account(self, errors: dict[str, str]) -> tuple[Any, str]:
        """The key file's content and the field to report its problems under."""
        uploaded = self._fields["service_account_file"].input.value
        pasted = self._fields["service_account_json"].input.value
        if uploaded and pasted.strip():
            errors["service_account_json"] = "upload the key file or paste it, not both"
            return None, "service_account_json"
        if uploaded:
            item = uploaded[0]
            content = item.get("content") if isinstance(item, Mapping) else getattr(item, "content", None)
            data = content.tobytes() if isinstance(content, memoryview) else bytes(content or b"")
            return data, "service_account_file"
        return pasted, "service_account_json"

    def build_body(self) -> dict:
        """Validate the visible fields and return the ``StorageConnectionCreateRequest``
        body (``test_before_save=True``). Raises :class:`CredentialError` whose
        ``.fields`` are keyed by form field name."""
        errors: dict[str, str] = {}
        metadata = self._read_metadata(errors)
        common = dict(
            name=self._v("name"), description=self._opt("description"), metadata=metadata, test_before_save=True
        )
        provider, cred = self.provider, self.credential_type
        sa_field = "service_account_json"
        try:
            if provider == "s3" and cred == "iam_role":
                body = cr.s3_iam_role(
                    role_arn=self._v("role_arn"),
                    external_id=self._v("external_id"),
                    region=self._v("region"),
                    bucket=self._opt("bucket"),
                    **common,
                )
            elif provider == "s3":
                body = cr.s3_access_key(
                    access_key_id=self._v("access_key_id"),
                    secret_access_key=self._v("secret_access_key"),
                    region=self._v("region"),
                    bucket=self._opt("bucket"),
                    session_token=self._opt("session_token"),
                    **common,
                )
            elif provider == "s3_compatible":
                body = cr.s3_compatible(
                    endpoint_url=self._v("endpoint_url"),
                    access_key_id=self._v("access_key_id"),
                    secret_access_key=self._v("secret_access_key"),
                    region=self._v("region"),
                    bucket=self._opt("bucket"),
                    session_token=self._opt("session_token"),
                    use_ssl=self._v("use_ssl"),
                    verify_ssl=self._v("verify_ssl"),
                    **common,
                )
            elif provider == "tigris":
                body = cr.tigris(
                    access_key_id=self._v("access_key_id"),
                    secret_access_key=self._v("secret_access_key"),
                    region=self._v("region") or "auto",
                    endpoint_url=self._v("endpoint_url") or cr.TIGRIS_DEFAULT_ENDPOINT,
                    bucket=self._opt("bucket"),
                    **common,
                )
            elif cred == "oauth":
                body = cr.gdrive_oauth(
                    client_id=self._v("client_id"),
                    client_secret=self._v("client_secret"),
                    refresh_token=self._v("refresh_token"),
                    shared_drive_id=self._opt("shared_drive_id"),
                    **common,
                )
            else:
                sa, sa_field = self._read_service_account(errors)
                if sa is None:
                    raise cr.CredentialError({})
                body = cr.gdrive_service_account(
                    service_account_json=sa,
                    shared_drive_id=self._opt("shared_drive_id"),
                    impersonate_user=self._opt("impersonate_user"),
                    **common,
                )
        except cr.CredentialError as exc:
            for key, msg in exc.fields.items():
                if key == "service_account" or key.startswith("service_account."):
                    sub = key.partition(".")[2]
                    key, msg = sa_field, (f"{sub}: {msg}" if sub else msg)
                elif key not in self._fields:
                    key = "_form"
                errors[key] = f"{errors[key]}; {msg}" if key in errors else msg
            body = None
        if errors:
            raise cr.CredentialError(errors)
        assert body is not None
        return body

    # ---- submit -------------------------------------------------------------------------

    def clear_secrets(self) -> None:
        """Empty every secret widget (passwords, pasted key, uploaded key file)."""
        for fl in self._fields.values():
            if not fl.secret:
                continue
            if isinstance(fl.input, widgets.FileUpload):
                fl.input.value = ()
            else:
                fl.input.value = ""

    def _resolve_submit(self) -> Callable[[dict], Any]:
        if self._submit is not None:
            return self._submit
        client = self._session_client()
        connections = getattr(client, "connections", None)
        create = getattr(connections, "create", None)
        if create is None:
            raise RuntimeError(
                "no way to save the connection: pass submit=callable(body) or a client with .connections.create()"
            )
        return lambda body: create(**body)

    def _session_client(self) -> Any:
        if self._client is None:
            try:
                from mixpeek_magics.notebook import session

                self._client = session.signed_in_client()
            except Exception:  # noqa: BLE001 - reported as "no client" by the caller
                return None
        return self._client

    def test_and_save(self) -> Any:
        """Validate, send with ``test_before_save=True``, clear the secrets.
        Returns the saved connection, or None on any problem (shown in the form)."""
        if self._busy:
            return None
        self._busy = True
        self.save_button.disabled = True
        self._clear_errors()
        body: dict | None = None
        try:
            try:
                body = self.build_body()
            except cr.CredentialError as exc:
                errs = dict(exc.fields)
                general = errs.pop("_form", None)
                self._show_errors(errs)
                n = len(exc.fields)
                self._set_status(
                    f"Nothing was sent: fix the {n} highlighted field{'s' if n != 1 else ''}"
                    + (f" ({general})" if general else "")
                    + ". Secrets were cleared; re-enter them.",
                    "error",
                )
                return None
            self._set_status("Testing the connection…", "info")
            try:
                result = self._resolve_submit()(body)
            except Exception as exc:  # noqa: BLE001 - any provider/API failure is shown, nothing saved
                message = cr.scrub(_text_of(exc), body)
                self._show_errors(self._api_field_errors(getattr(exc, "fields", None), body))
                self._set_status(
                    f"Connection failed, nothing was saved: {message}\nSecrets were cleared; re-enter them to retry.",
                    "error",
                )
                return None
            self.connection = cr.redact(result) if isinstance(result, Mapping) else result
            self.connection_id = _get(result, "connection_id", "internal_id", "id")
            self._set_status(
                f"Saved connection {body['name']!r}" + (f" ({self.connection_id})" if self.connection_id else "") + ".",
                "ok",
            )
            self._after_save(body)
            return self.connection
        finally:
            body = None
            self.clear_secrets()
            self.save_button.disabled = False
            self._busy = False

    def _api_field_errors(self, api_fields: Any, body: dict) -> dict[str, str]:
        """A 422's ``fields`` (``[(dotted loc, msg)]`` or a mapping) -> form field errors."""
        pairs: list[tuple[Any, Any]]
        if isinstance(api_fields, Mapping):
            pairs = list(api_fields.items())
        elif isinstance(api_fields, (list, tuple)):
            pairs = [(p[0], p[1]) for p in api_fields if isinstance(p, (list, tuple)) and len(p) == 2]
        else:
            return {}
        mapped: dict[str, str] = {}
        for loc, msg in pairs:
            parts = [str(x) for x in loc] if isinstance(loc, (list, tuple)) else str(loc).replace("/", ".").split(".")
            leaf = next((x for x in reversed(parts) if x in self._fields), None)
            if leaf is not None:
                text = cr.scrub(str(msg), body)
                mapped[leaf] = f"{mapped[leaf]}; {text}" if leaf in mapped else text
        return mapped

    def _after_save(self, body: dict) -> None:
        if self._on_saved is not None:
            try:
                self._on_saved(self.connection)
            except Exception as exc:  # noqa: BLE001
                self._set_status(f"{self._status_text} (on_saved failed: {cr.scrub(_text_of(exc), body)})", "error")
        client = self._client
        bucket = body.get("provider_config", {}).get("bucket")
        self.sync_form = SyncForm(
            self.connection_id or "",
            body["provider_type"],
            client=client,
            default_source=f"{bucket}/" if bucket else "",
            list_folders=self._list_folders,
            list_buckets=self._list_buckets,
            create_sync=self._create_sync,
            on_sync_created=self._on_sync_created,
        )
        self.children = (*self.children, self.sync_form)

    # ---- reprs ----------------------------------------------------------------------

    def __repr__(self) -> str:
        saved = f", connection_id={self.connection_id!r}" if self.connection_id else ""
        return f"<ConnectionForm provider={self.provider!r} name={self._v('name')!r}{saved}>"

    __str__ = __repr__


# ---------------------------------------------------------------------------
# the sync form
# ---------------------------------------------------------------------------


def _folder_items(resp: Any) -> list[dict]:
    """ListFoldersResponse (dict or model) or a plain list -> [{id, name, path}]."""
    items = _get(resp, "results", "folders") if not isinstance(resp, (list, tuple)) else resp
    out = []
    for it in items or ():
        fid, name, path = _get(it, "id"), _get(it, "name"), _get(it, "path")
        if fid is None and name is None:
            continue
        out.append({"id": fid or path, "name": name or str(fid), "path": path or f"/{name}"})
    return out


def _bucket_options(resp: Any) -> list[tuple[str, str]]:
    items = _get(resp, "results", "items", "buckets", "data")
    if items is None and isinstance(resp, Iterable) and not isinstance(resp, (str, Mapping)):
        items = resp
    out = []
    for b in items or ():
        if isinstance(b, str):
            out.append((b, b))
            continue
        name, bid = _get(b, "bucket_name", "name"), _get(b, "bucket_id", "id")
        if name or bid:
            out.append((f"{name} ({bid})" if name and bid else str(name or bid), str(bid or name)))
    return out


class SyncForm(_FormBase):
    """Create a bucket sync from a saved connection (``SyncCreateRequest``)."""

    fallback_text = SYNC_WITHOUT_WIDGETS

    def __init__(
        self,
        connection_id: str,
        provider_type: str,
        *,
        client: Any = None,
        default_source: str = "",
        list_folders: Callable[[str, str], Any] | None = None,
        list_buckets: Callable[[], Any] | None = None,
        create_sync: Callable[[str, dict], Any] | None = None,
        on_sync_created: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._init_base()
        self.connection_id = connection_id
        self.provider_type = provider_type
        self._client = client
        self._list_folders = list_folders
        self._create_sync = create_sync
        self._on_sync_created = on_sync_created
        self._busy = False
        self.sync: Any = None
        self.folder_path = "/"
        self._here = "/"
        self._folders: dict[str, dict] = {}
        self._stack: list[tuple[str, str]] = []

        self._add("bucket", self._bucket_widget(client, list_buckets))
        is_drive = provider_type == "google_drive"
        self._add_source_fields(default_source)
        self._add_schedule_fields()
        self.create_button = widgets.Button(description="Create sync", button_style="primary", icon="sync")
        self.create_button.on_click(lambda _b: self.create())
        self._fields["sync_mode"].input.observe(lambda _c: self._update_visibility(), names="value")

        self._fields["source_path"].show(not is_drive)
        self._fields["folder"].show(is_drive)
        self.children = (
            widgets.HTML("<b>Sync into a bucket</b>"),
            *(fl.box for fl in self._fields.values()),
            widgets.HBox([self.create_button]),
            self.status,
        )
        self._update_visibility()
        if is_drive:
            self.load_folders("/")

    # ---- construction ------------------------------------------------------------------

    def _bucket_widget(self, client: Any, list_buckets: Callable[[], Any] | None) -> widgets.Widget:
        """A dropdown of the buckets when they can be listed, else a text field for the bucket id."""
        if list_buckets is None and client is not None and getattr(client, "buckets", None) is not None:
            b = client.buckets
            list_buckets = getattr(b, "iter", None) or getattr(b, "list", None)
        bucket_opts: list[tuple[str, str]] | None = None
        if list_buckets is not None:
            try:
                bucket_opts = _bucket_options(list_buckets())
            except Exception as exc:  # noqa: BLE001
                self._set_status(f"Could not list buckets ({_text_of(exc)}); type the bucket id.", "error")
        if bucket_opts:
            return widgets.Dropdown(options=bucket_opts, description="Target bucket", style=_STYLE, layout=_wide())
        return widgets.Text(description="Target bucket", placeholder="bucket id or name", style=_STYLE, layout=_wide())

    def _add_source_fields(self, default_source: str) -> None:
        """The source: a path (object storage) or a folder picker (Google Drive)."""
        self._add(
            "source_path",
            widgets.Text(
                value=default_source,
                description="Source path",
                placeholder="bucket-name/prefix",
                style=_STYLE,
                layout=_wide(),
            ),
        )
        self.folder_label = widgets.HTML("")
        self.open_button = widgets.Button(
            description="Open folder", icon="folder-open", layout=widgets.Layout(width="130px")
        )
        self.up_button = widgets.Button(description="Up", icon="arrow-up", layout=widgets.Layout(width="80px"))
        self.open_button.on_click(lambda _b: self.open_selected_folder())
        self.up_button.on_click(lambda _b: self.folder_up())
        self._add(
            "folder",
            widgets.Dropdown(
                options=[("/ (root)", "/")], value="/", description="Source folder", style=_STYLE, layout=_wide()
            ),
            extra=[widgets.HBox([self.open_button, self.up_button, self.folder_label])],
        )

    def _add_schedule_fields(self) -> None:
        """Mode, polling interval and the file filters."""
        self._add(
            "sync_mode",
            widgets.ToggleButtons(
                options=[("Initial only", "initial_only"), ("Continuous", "continuous")],
                value="continuous",
                description="Mode",
                style=_STYLE,
            ),
        )
        self._add("polling_interval_seconds", widgets.IntText(value=300, description="Poll every (s)", style=_STYLE))
        self._add(
            "include_patterns",
            widgets.Text(description="Include", placeholder="*.mp4, *.mov", style=_STYLE, layout=_wide()),
        )
        self._add(
            "exclude_patterns",
            widgets.Text(description="Exclude", placeholder="*/drafts/*, *_temp.*", style=_STYLE, layout=_wide()),
        )
        self._add(
            "min_size_bytes", widgets.Text(description="Min size", placeholder="e.g. 1KB (optional)", style=_STYLE)
        )
        self._add(
            "max_size_bytes", widgets.Text(description="Max size", placeholder="e.g. 2GB (optional)", style=_STYLE)
        )

    # ---- visibility ------------------------------------------------------------------

    def _update_visibility(self) -> None:
        self._fields["polling_interval_seconds"].show(self._fields["sync_mode"].input.value == "continuous")

    # ---- Drive folder picker ------------------------------------------------------------

    def _resolve_list_folders(self) -> Callable[[str, str], Any] | None:
        if self._list_folders is not None:
            return self._list_folders
        conns = getattr(self._client, "connections", None)
        fn = getattr(conns, "list_folders", None) or getattr(conns, "folders", None)
        if fn is None:
            return None
        return lambda cid, path: fn(cid, path=path)

    def load_folders(self, path: str = "/", folder_id: str | None = None) -> list[dict]:
        """Fill the folder picker with the folders under ``path`` (``folder_id`` is the
        id of that folder, used as the source when "this folder" is chosen)."""
        fn = self._resolve_list_folders()
        folder = self._fields["folder"]
        if fn is None:
            self._errors["folder"] = "no folder listing available (pass list_folders=...)"
            folder.set_error(self._errors["folder"])
            return []
        try:
            items = _folder_items(fn(self.connection_id, path))
        except Exception as exc:  # noqa: BLE001
            self._errors["folder"] = f"could not list folders: {_text_of(exc)}"
            folder.set_error(self._errors["folder"])
            return []
        self._errors.pop("folder", None)
        folder.set_error(None)
        here = "/" if path == "/" else (folder_id or path)
        self.folder_path, self._here = path, here
        self._folders = {it["id"]: it for it in items}
        folder.input.options = [(f"{path} (this folder)", here)] + [(f"📁 {it['name']}", it["id"]) for it in items]
        folder.input.value = here
        self.folder_label.value = f'<span style="color:#555">in {html.escape(path)}</span>'
        self.up_button.disabled = not self._stack
        return items

    def open_selected_folder(self) -> None:
        """Descend into the folder selected in the picker."""
        item = self._folders.get(self._fields["folder"].input.value)
        if item is None:
            return
        self._stack.append((self.folder_path, self._here))
        self.load_folders(item["path"], item["id"])

    def folder_up(self) -> None:
        if self._stack:
            path, here = self._stack.pop()
            self.load_folders(path, here)

    # ---- body / create ---------------------------------------------------------------------

    def build_body(self) -> tuple[str, dict]:
        """``(bucket, SyncCreateRequest body)``; raises :class:`CredentialError`."""
        errors: dict[str, str] = {}
        bucket = self._fields["bucket"].input.value
        bucket = bucket.strip() if isinstance(bucket, str) else bucket
        if not bucket:
            errors["bucket"] = "required: the Mixpeek bucket the files go into"
        is_drive = self.provider_type == "google_drive"
        if is_drive:
            source = self._fields["folder"].input.value
        else:
            source = self._fields["source_path"].input.value.strip().strip("/")
            if source:
                try:
                    cr.validate_bucket_name(source.split("/", 1)[0], field="source_path")
                except cr.CredentialError as exc:
                    errors["source_path"] = exc.fields["source_path"] + " (expected bucket-name/prefix)"
        mode = self._fields["sync_mode"].input.value
        body = None
        try:
            body = cr.sync_request(
                self.connection_id,
                source,
                sync_mode=mode,
                polling_interval_seconds=self._fields["polling_interval_seconds"].input.value
                if mode == "continuous"
                else None,
                include_patterns=self._fields["include_patterns"].input.value,
                exclude_patterns=self._fields["exclude_patterns"].input.value,
                min_size_bytes=self._fields["min_size_bytes"].input.value,
                max_size_bytes=self._fields["max_size_bytes"].input.value,
            )
        except cr.CredentialError as exc:
            for k, v in exc.fields.items():
                if k == "source_path" and is_drive:
                    k = "folder"
                elif k not in self._fields:
                    k = "_form"
                errors[k] = v
        if errors:
            raise cr.CredentialError(errors)
        assert body is not None
        return bucket, body

    def _resolve_create(self) -> Callable[[str, dict], Any]:
        if self._create_sync is not None:
            return self._create_sync
        for holder in (
            getattr(self._client, "syncs", None),
            getattr(getattr(self._client, "buckets", None), "syncs", None),
        ):
            create = getattr(holder, "create", None)
            if create is not None:
                return lambda bucket, body: create(bucket, **body)
        raise RuntimeError(
            "no way to create the sync: pass create_sync=callable(bucket, body) or a client with .syncs.create()"
        )

    def create(self) -> Any:
        """Validate and create the sync; returns it or None (problems shown in the form)."""
        if self._busy:
            return None
        self._busy = True
        self.create_button.disabled = True
        self._clear_errors()
        try:
            try:
                bucket, body = self.build_body()
            except cr.CredentialError as exc:
                errs = dict(exc.fields)
                general = errs.pop("_form", None)
                self._show_errors(errs)
                self._set_status(
                    "Nothing was sent: fix the highlighted fields" + (f" ({general})" if general else "") + ".", "error"
                )
                return None
            self._set_status("Creating the sync…")
            try:
                sync = self._resolve_create()(bucket, body)
            except Exception as exc:  # noqa: BLE001
                self._set_status(f"Could not create the sync: {_text_of(exc)}", "error")
                return None
            self.sync = sync
            sid = _get(sync, "sync_config_id", "id")
            self._set_status("Sync created" + (f" ({sid})" if sid else "") + ".", "ok")
            if self._on_sync_created is not None:
                try:
                    self._on_sync_created(sync)
                except Exception as exc:  # noqa: BLE001
                    self._set_status(f"{self._status_text} (on_sync_created failed: {_text_of(exc)})", "error")
            return sync
        finally:
            self.create_button.disabled = False
            self._busy = False

    def __repr__(self) -> str:
        return f"<SyncForm connection_id={self.connection_id!r} provider={self.provider_type!r}>"

    __str__ = __repr__


def connect(
    client: Any = None,
    *,
    on_saved: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> ConnectionForm:
    """Open the storage-connection form (``mixpeek_magics.connect()``).

    Extra keyword arguments (``submit``, ``list_folders``, ``list_buckets``,
    ``create_sync``, ``on_sync_created``) are passed to :class:`ConnectionForm`.
    """
    return ConnectionForm(client, on_saved=on_saved, **kwargs)
