"""A full disk: a typed `StoreError` saying how much space is needed, never SIGBUS, nothing half-written.

The disk is a real tmpfs of a few MB mounted for the case (root, or a user namespace where
``unshare -rm`` is allowed); where neither is possible the free-space probe is replaced by a
wrapper that reports a nearly full disk (an in-process store wrapper: the check, not the engine's
SIGBUS, is then what is tested).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultkit import FAKE, cli_process, docs_rows, write_jsonl

import tamis
from tamis import StoreError

MB = 1024 * 1024


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[callable]:
    mounted: list[Path] = []

    def mount(size_mb: int) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(fs: Path, leave_mb: float) -> Path:
    """Fill ``fs`` until about ``leave_mb`` MB are free."""
    filler = fs / "filler"
    free = shutil.disk_usage(fs).free - int(leave_mb * MB)
    with open(filler, "wb") as f:
        while free > 0:
            n = min(free, 4 * MB)
            f.write(b"\0" * n)
            free -= n
    return filler


@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a tmpfs (the wrapper case below runs anyway)")
def test_bug7_index_into_a_tiny_disk_fails_with_a_store_error_and_info_never_crashes(tmp_path, tmpfs):
    fs = tmpfs(8)
    src = write_jsonl(tmp_path / "c.jsonl", docs_rows(300))
    res = cli_process("index", src, "-c", "c", "--path", fs / "d", *FAKE)
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "StoreError" in res.stderr and "MiB" in res.stderr and "free" in res.stderr
    res = cli_process("info", "-c", "c", "--path", fs / "d")
    assert res.returncode == 2 and "CollectionNotFoundError" in res.stderr, (res.returncode, res.stderr[-2000:])
    assert not any((fs / "d" / "collections").iterdir())  # nothing half-made


@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a tmpfs (the wrapper case below runs anyway)")
def test_bug7_a_disk_that_fills_up_refuses_writes_and_keeps_the_collection(tmp_path, tmpfs):
    fs = tmpfs(90)
    data = fs / "d"
    res = cli_process("index", write_jsonl(tmp_path / "a.jsonl", docs_rows(300)), "-c", "c", "--path", data, *FAKE)
    assert res.returncode == 0, res.stderr[-2000:]
    filler = _fill(fs, 0.5)
    more = write_jsonl(tmp_path / "b.jsonl", docs_rows(300, prefix="e"))
    res = cli_process("index", more, "-c", "c", "--path", data)
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "StoreError" in res.stderr and "free" in res.stderr and "Traceback" not in res.stderr
    res = cli_process("info", "-c", "c", "--path", data)
    assert res.returncode in (0, 2) and "Traceback" not in res.stderr, (res.returncode, res.stderr[-2000:])
    if res.returncode == 2:
        assert "StoreError" in res.stderr and "free" in res.stderr
    filler.unlink()
    with tamis.open_collection("c", path=data) as col:
        assert col.count() == 300 and col.manifest["ingest"]["state"] == "complete"
        assert col.search("volcano lava", k=3)


def test_bug7_the_free_space_check_through_a_wrapper(data, monkeypatch):
    """The same check without a small disk: the probe of free space reports 1 MiB."""
    from tamis.adapters import _edge_files

    monkeypatch.setattr(_edge_files, "free_bytes", lambda path: 1 * MB)
    with tamis.open_collection("c", path=data, encoder=tamis.FakeEncoder(32), create=True) as col:
        with pytest.raises(StoreError, match=r"MiB needed.*free"):
            col.index([tamis.Document("a", "text")])
        assert col.store.list_collections() == []
