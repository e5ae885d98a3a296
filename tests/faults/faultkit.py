"""What the fault suite's cases share (imported as ``faultkit``: a module name of its own, since every
test folder has a conftest): the CLI through typer's runner, tiny inputs, and a look at the store.

Each case feeds one bad input, crash or fault (the audit of issue 11) and checks the typed error
*and* that nothing was half-written: point counts, the ingest state, searchability.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tamis.cli import app

#: the deterministic, model-free encoder: a collection records "fake:32" and re-opens with it
FAKE = ["--model", "fake:32"]
runner = CliRunner()


def cli(*args: Any) -> Any:
    """``tamis ARGS`` in-process; the result has ``exit_code``, ``stdout``, ``stderr``, ``exception``."""
    return runner.invoke(app, [str(a) for a in args])


def cli_process(*args: Any, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``tamis ARGS`` as a real process (its exit status, stdout and stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "tamis.cli", *map(str, args)], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})}, cwd=cwd,
    )


def write_jsonl(path: Path, rows: list[Any] | list[str]) -> Path:
    """One JSON value per line (a str row is written as it is)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def docs_rows(n: int, prefix: str = "d") -> list[dict[str, Any]]:
    return [{"_id": f"{prefix}{i}", "text": f"note {i} about volcano lava and ash number {i}"} for i in range(n)]


def state(data: Path, name: str) -> dict[str, Any]:
    """``{"exists", "points", "ingest", "physical"}`` of collection ``name`` in the Edge store at ``data``."""
    import tamis

    try:
        col = tamis.open_collection(name, path=data)
    except tamis.CollectionNotFoundError:
        return {"exists": False, "points": 0, "ingest": None, "physical": None}
    with col:
        return {"exists": True, "points": col.count(), "ingest": col.manifest["ingest"]["state"],
                "physical": col.physical}
