"""``%mixpeek_auth``: sign in (key, env, saved key, prompt, or the embedded local server)."""

from __future__ import annotations

import os
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from mixpeek_magics.notebook import session as S
from mixpeek_magics.notebook.magics import options
from mixpeek_magics.notebook.magics._common import parse

INLINE_KEY_WARNING = (
    "Warning: the API key typed on this line is now in the notebook source (and was in the IPython "
    "history; it has been masked there for this session). Prefer setting MIXPEEK_API_KEY, or run "
    "%mixpeek_auth without a key to be prompted for it, and clear this cell's source."
)


def scrub_history(shell: Any, key: str | None) -> None:
    """Best effort: replace ``key`` by its mask in this session's input history (memory and DB)."""
    masked = S.mask(key)
    hm = getattr(shell, "history_manager", None)
    if hm is None or not key:
        return
    try:
        for lst in (hm.input_hist_raw, hm.input_hist_parsed):
            for i, v in enumerate(lst):
                if isinstance(v, str) and key in v:
                    lst[i] = v.replace(key, masked)
        # the history manager's own copies: the next cells' _i / _ii / _iii come from these
        for attr in ("_i00", "_i", "_ii", "_iii"):
            value = getattr(hm, attr, None)
            if isinstance(value, str) and key in value:
                setattr(hm, attr, value.replace(key, masked))
        ns = shell.user_ns
        for name in [n for n in list(ns) if n.startswith("_i")]:
            if isinstance(ns.get(name), str) and key in ns[name]:
                ns[name] = ns[name].replace(key, masked)
        with hm.db_input_cache_lock:
            hm.db_input_cache = [(n, p.replace(key, masked), r.replace(key, masked)) for n, p, r in hm.db_input_cache]
        hm.writeout_cache()
        with hm.db:
            hm.db.execute(
                "UPDATE history SET source=replace(source, ?, ?), source_raw=replace(source_raw, ?, ?) WHERE session=?",
                (key, masked, key, masked, hm.session_number),
            )
    except Exception:  # history is a convenience; never fail a sign-in over it
        pass


@magics_class
class AuthMagics(Magics):
    @magic_arguments()
    @argument(
        "api_key",
        nargs="?",
        default=None,
        help="The API key. Works, but puts the key into the notebook source and history: "
        "prefer MIXPEEK_API_KEY or the prompt.",
    )
    @argument("--base-url", default=None, help="API base URL (default: MIXPEEK_BASE_URL or https://api.mixpeek.com).")
    @argument(
        "--namespace",
        default=None,
        help="Namespace name or id to work in (default: %%config MixpeekMagics.default_namespace, "
        "then MIXPEEK_NAMESPACE). An unknown namespace is an error listing the available ones.",
    )
    @argument("--create-namespace", action="store_true", help="Create --namespace if it does not exist.")
    @argument(
        "--local",
        action="store_true",
        help="Start the embedded local Mixpeek server in this process (free port; reused if running) "
        "and sign in to it.",
    )
    @argument(
        "--save",
        action="store_true",
        help="Store the key in a file only you can read (0600) in your config dir; later "
        "%%mixpeek_auth calls use it when no key or env var is given.",
    )
    @argument("--status", action="store_true", help="Show who is signed in, and where.")
    @argument("--logout", action="store_true", help="Sign out and delete the key saved by --save.")
    @line_magic
    def mixpeek_auth(self, line: str = "") -> None:
        """Sign in to Mixpeek.

        The key comes from, in order: the argument, MIXPEEK_API_KEY, the key saved with
        --save, then a prompt (a password field in JupyterLab / Notebook / VS Code,
        getpass in a terminal). Headless runs (nbconvert, papermill, CI) never prompt:
        they fail at once, asking for MIXPEEK_API_KEY.

        The key is checked against the server (GET /v1/organizations, 10 s timeout) and
        one line is shown: organization, key kind (live / test / local), masked key,
        base URL and namespace.

        Examples::

            %mixpeek_auth                                   # env var, saved key, or a prompt
            %mixpeek_auth --namespace marketing             # ... and work in that namespace
            %mixpeek_auth --namespace scratch --create-namespace
            %mixpeek_auth --local --namespace demo --create-namespace   # embedded server, no key needed
            %mixpeek_auth --base-url https://api.mixpeek.com --save     # prompt once, remember the key
            %mixpeek_auth --status
            %mixpeek_auth --logout

        Afterwards ``mixpeek_magics.signed_in_client()`` returns the signed-in client.
        """
        args = parse(self.mixpeek_auth, line)
        opts = options.current()
        if args.logout:
            had = S.sign_out()
            forgot = S.forget_saved_key()
            what = "Signed out" if had else "Not signed in"
            print(what + ("; the saved key was deleted." if forgot else "."))
            return
        if args.status:
            current = S.current()
            print(current.status_line() if current else "Not signed in: run %mixpeek_auth")
            return
        namespace = args.namespace or opts.default_namespace or os.environ.get(S.ENV_NAMESPACE) or None
        timeout = opts.auth_timeout
        if args.local:
            if args.api_key or args.base_url:
                raise UsageError(
                    "--local signs in to the embedded server with its own key: "
                    "do not combine it with a key or --base-url"
                )
            session = S.sign_in_local(namespace, create_namespace=args.create_namespace, timeout=timeout)
            print(session.status_line())
            return
        key, source, saved_base = S.resolve_key(args.api_key)
        if source == "argument":
            scrub_history(self.shell, key)
            print(INLINE_KEY_WARNING, file=sys.stderr)
        base_url = args.base_url or (saved_base if source == "saved" and not os.environ.get(S.ENV_BASE_URL) else None)

        def finish(k: str) -> S.Session:
            return S.sign_in(
                k, base_url, namespace, create_namespace=args.create_namespace, save=args.save, timeout=timeout
            )

        if key:
            session = finish(key)
            print(session.status_line())
            if args.save:
                print(f"Key saved to {S.saved_credentials_path()} (readable by you only).")
            return
        mode = S.prompt_mode(widgets=opts.widgets)
        if mode is None:
            raise S.HeadlessError(S.headless_message())
        if mode == "getpass":
            typed = S.ask_with_getpass()
            if not typed:
                raise S.AuthError("no API key entered")
            session = finish(typed)
            print(session.status_line())
            return
        from IPython.display import display

        prompt = S.KeyPrompt(finish)
        S.pending_prompt = prompt
        display(prompt.box)
