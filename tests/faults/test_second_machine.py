"""Another machine (no shared ingest state) ingests files the bucket already has: what another batch
processed is left alone; what was uploaded but never processed (a run killed before submitting) is."""

from __future__ import annotations

from pathlib import Path

from mixpeek_magics.client import Mixpeek
from tests.fixtures.files import make_files


def _machine(ip, tmp_path: Path, name: str) -> None:
    ip.run_line_magic("config", f"MixpeekMagics.ingest_state_path = {str(tmp_path / f'{name}.sqlite3')!r}")


def test_another_machine_leaves_processed_objects_and_processes_orphans(signed_in, ip, tmp_path, held, monkeypatch):
    import time

    from mixpeek_magics.ingest import bulk_upload, makers

    # the orphans' maker cannot be asked: they are left to it while young (30 s by default; 3 here)
    monkeypatch.setattr(makers, "UNKNOWN_MAKER_WINDOW", 3.0)

    done = make_files(tmp_path / "data", 6, "done")
    _machine(ip, tmp_path, "first")
    ip.run_cell_magic("ingest", "--bucket shared --create-bucket --wait -o first", "data/\n")
    assert ip.user_ns["first"].status == "completed"
    # uploaded and confirmed, never submitted: what a run killed between confirm and submit leaves
    c = Mixpeek(api_key=signed_in.api_key, base_url=signed_in.base_url, namespace="demo")
    orphans = bulk_upload(c, "shared", make_files(tmp_path / "data", 3, "orphan"), submit=False)
    assert len(orphans.object_ids) == 3 and orphans.task is None
    made = time.monotonic()
    _machine(ip, tmp_path, "second")
    ip.run_cell_magic("ingest", "--bucket shared --wait -o second", "data/\n")
    waited = time.monotonic() - made
    second = ip.user_ns["second"]
    by_status: dict[str, int] = {}
    for item in second.items:
        by_status[item.status] = by_status.get(item.status, 0) + 1
    batches = c.batches.list("shared").items
    c.close()
    resubmitted = [b for b in batches if set(b.object_ids or []) & set(ip.user_ns["first"].objects)]
    held(
        "a second machine ingests a folder another one ingested (+3 files never processed)",
        "processed files left alone, the never processed ones processed",
        by_status == {"duplicate": len(done), "recovered": 3}
        and sorted(second.objects) == sorted(orphans.object_ids)
        and len(batches) == 2
        and len(resubmitted) == 1
        and second.status == "completed"
        and waited >= 2.5,
        f"{by_status}, {len(batches)} batches, after {waited:.1f}s",
    )
