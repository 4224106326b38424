"""``%mixpeek_connect`` (connection form) and ``%mixpeek_connections`` (list + actions)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from mixpeek_magics.notebook import session as S
from mixpeek_magics.notebook.magics import options
from mixpeek_magics.notebook.magics._common import bind, parse


class ConnectionsPanel:
    """Pick a connection; Test, Suspend / Resume, Delete (asks Yes / No first)."""

    def __init__(self, client: Any, frame: Any, refresh: Callable[[], Any] | None = None) -> None:
        from mixpeek_magics._extras import require

        require("notebook", "ipywidgets")
        import ipywidgets as W

        self.client = client
        self.refresh = refresh
        self.frame = frame
        self.select = W.Dropdown(description="Connection", options=self._options(frame))
        self.test_button = W.Button(description="Test", icon="plug")
        self.toggle_button = W.Button(description="Suspend", icon="pause")
        self.delete_button = W.Button(description="Delete", icon="trash", button_style="danger")
        self.confirm_label = W.Label(value="")
        self.yes = W.Button(description="Yes, delete", button_style="danger")
        self.no = W.Button(description="No")
        self.confirm_box = W.HBox([self.confirm_label, self.yes, self.no], layout=W.Layout(display="none"))
        self.message = W.HTML(value="")
        self.test_button.on_click(lambda _b: self.test())
        self.toggle_button.on_click(lambda _b: self.toggle())
        self.delete_button.on_click(lambda _b: self.request_delete())
        self.yes.on_click(lambda _b: self.confirm_delete())
        self.no.on_click(lambda _b: self.dismiss_delete())
        self.select.observe(lambda _c: self._sync_toggle(), names="value")
        self.box = W.VBox(
            [
                W.HBox([self.select, self.test_button, self.toggle_button, self.delete_button]),
                self.confirm_box,
                self.message,
            ]
        )
        self._sync_toggle()

    @staticmethod
    def _options(frame: Any) -> list[tuple[str, str]]:
        if frame is None or len(frame) == 0:
            return []
        return [
            (f"{r['name']} ({r['provider_type']}, {r['status']})", r["connection_id"]) for r in frame.to_dict("records")
        ]

    def _row(self) -> dict[str, Any] | None:
        cid = self.select.value
        if cid is None or self.frame is None:
            return None
        for r in self.frame.to_dict("records"):
            if r["connection_id"] == cid:
                return r
        return None

    def _sync_toggle(self) -> None:
        row = self._row()
        suspended = row is not None and str(row.get("status") or "").upper() == "SUSPENDED"
        self.toggle_button.description = "Resume" if suspended else "Suspend"
        self.toggle_button.icon = "play" if suspended else "pause"

    def _say(self, text: str, ok: bool = True) -> None:
        color = "#2e7d32" if ok else "#c62828"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    def _reload(self) -> None:
        if self.refresh is None:
            return
        try:
            self.frame = self.refresh()
            current = self.select.value
            self.select.options = self._options(self.frame)
            if current in [v for _l, v in self.select.options]:
                self.select.value = current
        except Exception as exc:  # keep the panel usable
            self._say(f"could not refresh the list: {exc}", ok=False)
        self._sync_toggle()

    def test(self) -> Any:
        cid = self.select.value
        if not cid:
            return None
        try:
            res = self.client.connections.test(cid)
        except Exception as exc:
            self._say(f"test failed: {exc}", ok=False)
            return None
        self._say(("✓ " if res.success else "✗ ") + (res.message or ""), ok=bool(res.success))
        return res

    def toggle(self) -> None:
        cid, row = self.select.value, self._row()
        if not cid or row is None:
            return
        try:
            if str(row.get("status") or "").upper() == "SUSPENDED":
                self.client.connections.activate(cid)
                self._say(f"{row['name']} resumed")
            else:
                self.client.connections.suspend(cid)
                self._say(f"{row['name']} suspended")
        except Exception as exc:
            self._say(str(exc), ok=False)
        self._reload()

    def request_delete(self) -> None:
        row = self._row()
        if row is None:
            return
        self.confirm_label.value = f"Delete connection {row['name']!r}? Syncs using it stop working."
        self.confirm_box.layout.display = None

    def dismiss_delete(self) -> None:
        self.confirm_box.layout.display = "none"

    def confirm_delete(self) -> None:
        self.dismiss_delete()
        row = self._row()
        if row is None:
            return
        try:
            self.client.connections.delete(row["connection_id"])
            self._say(f"{row['name']} deleted")
        except Exception as exc:
            self._say(str(exc), ok=False)
        self._reload()


@magics_class
class ConnectionMagics(Magics):
    @magic_arguments()
    @line_magic
    def mixpeek_connect(self, line: str = "") -> Any:
        """Open the form that creates a storage connection (S3, S3-compatible, Google Drive).

        Credentials typed into the form are sent to the server and cleared from the
        form; they never appear in the notebook. Where widgets cannot be shown (a
        terminal, ``%config MixpeekMagics.widgets = False``) it prints the Python calls
        that do the same instead.

        Example::

            %mixpeek_connect
        """
        parse(self.mixpeek_connect, line)
        client = S.signed_in_client()
        from mixpeek_magics.notebook.display import choose_mode

        if choose_mode(options.current().display_mode()) != "widget":
            from mixpeek_magics.notebook.fallbacks import CONNECT_WITHOUT_WIDGETS

            print(CONNECT_WITHOUT_WIDGETS)
            return None
        from mixpeek_magics.notebook.connect_form import connect

        return connect(client)

    @magic_arguments()
    @argument("--provider", default=None, help="Only this provider type: s3, google_drive, tigris, ...")
    @argument("--status", default=None, help="Only this status: ACTIVE, SUSPENDED, ...")
    @argument("-o", "--output", default=None, metavar="VAR", help="Bind the DataFrame to VAR.")
    @line_magic
    def mixpeek_connections(self, line: str = "") -> Any:
        """List storage connections as a DataFrame, with Test / Suspend-Resume / Delete buttons.

        Examples::

            %mixpeek_connections
            %mixpeek_connections --provider s3 --status ACTIVE
            %mixpeek_connections -o conns
        """
        args = parse(self.mixpeek_connections, line)
        client = S.signed_in_client()
        from mixpeek_magics.frames import connections_frame

        def load() -> Any:
            return connections_frame(client, provider_type=args.provider, status=args.status)

        frame = load()
        opts = options.current()
        from mixpeek_magics.notebook.display import choose_mode

        if len(frame) and choose_mode(opts.display_mode()) == "widget":
            from IPython.display import display

            panel = ConnectionsPanel(client, frame, refresh=load)
            display(panel.box)
            global last_panel
            last_panel = panel
        if args.output:
            bind(self.shell, args.output, frame)
            return None
        return frame


last_panel: ConnectionsPanel | None = None
