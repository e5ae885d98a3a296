"""`tamis train` killed with SIGKILL half-way: the re-run resumes from a checkpoint, by steps or by time."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("_train_fixtures", Path(__file__).parents[1] / "sdk" / "_train_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)  # type: ignore[union-attr]

KILLED_AT = textwrap.dedent(
    """
    import os, signal, sys
    from transformers import Trainer

    kill_at, steps = int(sys.argv[1]), [0]
    original = Trainer.training_step

    def training_step(self, *args, **kwargs):
        steps[0] += 1
        if steps[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    Trainer.training_step = training_step
    from tamis.cli import app

    sys.argv = ["tamis", *sys.argv[2:]]
    app()
    """
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return fixtures.tiny_bi_encoder(root / "tiny"), fixtures.tiny_beir(root / "beir")


@pytest.mark.slow
def test_a_killed_training_run_resumes_from_its_checkpoint(tmp_path, tiny):
    """Killed at step 13 of 16 with --checkpoint-steps 5: the re-run resumes from step 10 (it restarted at 0 with
    the fixed 500 steps before)."""
    model, beir = tiny
    args = ["train", str(beir), "--out", str(tmp_path / "out"), "--base", str(model), "--max-steps", "16",
            "--batch-size", "4", "--device", "cpu", "--json", "--checkpoint-steps", "5"]
    env = {**os.environ, "TAMIS_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", KILLED_AT, "13", *args], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()  # nothing half-written where the model goes
    proc = subprocess.run([sys.executable, "-m", "tamis.cli", *args], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["resumed_from"] is not None and result["resumed_from"].endswith("checkpoint-10")
    assert result["steps"] == 16


def test_checkpoints_also_come_by_time(tmp_path, tiny, monkeypatch):
    """checkpoint_steps far away, checkpoint_minutes tiny: an interrupted run still has a checkpoint to resume."""
    from transformers import TrainerCallback

    import tamis.training._trainer as trainer_mod
    from tamis.training import train_bi_encoder

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            if state.global_step == 3:
                raise KeyboardInterrupt("power cut")

    model, beir = tiny
    opts = dict(base=str(model), max_steps=5, batch_size=4, epochs=1, progress=False, dev_queries=6, device="cpu",
                checkpoint_steps=1000, checkpoint_minutes=1e-6, cache_dir=str(tmp_path / "cache"))
    with monkeypatch.context() as m:
        m.setattr(trainer_mod, "_time_limit_callback", lambda minutes: [Crash()])
        with pytest.raises(KeyboardInterrupt):
            train_bi_encoder(beir, tmp_path / "m", **opts)
    result = train_bi_encoder(beir, tmp_path / "m", **opts)
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-2")
    assert result.steps == 5
