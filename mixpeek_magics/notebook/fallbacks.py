"""What the forms say where widgets cannot be shown: the way to do the same without them.

Plain text, importable without ipywidgets (a terminal may not have it).
"""

from __future__ import annotations

__all__ = ["CONNECT_WITHOUT_WIDGETS", "SYNC_WITHOUT_WIDGETS", "key_prompt_without_widgets"]

#: The connection form, without widgets: the Python calls that do the same.
CONNECT_WITHOUT_WIDGETS = """\
The storage-connection form needs widgets, which this front end does not show.
The same from Python (secrets from environment variables, never typed into the notebook):

    import os, mixpeek_magics
    from mixpeek_magics.client import credentials
    client = mixpeek_magics.signed_in_client()
    client.connections.create(**credentials.s3_access_key(
        "my-s3", os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], "us-east-1"))

Other providers: credentials.s3_iam_role, s3_compatible, tigris, gdrive_service_account,
gdrive_oauth. Then ingest from it: %%ingest --bucket NAME with a line s3://bucket/prefix/ via "my-s3"."""

SYNC_WITHOUT_WIDGETS = """\
The sync form needs widgets, which this front end does not show. The same from Python:

    sync = client.syncs.create("my-bucket", connection_id="conn_...", source_path="bucket/prefix/",
                               sync_mode="initial_only")
    client.syncs.wait("my-bucket", sync.sync_config_id)"""


def key_prompt_without_widgets(env_var: str) -> str:
    """The sign-in prompt, without widgets: the other ways to give the key."""
    return (
        f"Mixpeek sign-in: this front end does not show the key field. Instead:\n"
        f"  - set {env_var} in the kernel's environment and run %mixpeek_auth again, or\n"
        f"  - run %config MixpeekMagics.widgets = False, then %mixpeek_auth asks with getpass, or\n"
        f"  - in Python: import getpass; from mixpeek_magics.notebook.session import sign_in;\n"
        f'    sign_in(getpass.getpass("Mixpeek API key: "))'
    )
