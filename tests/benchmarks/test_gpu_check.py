"""benchmarks/gpu_check.py (issue 18) without a GPU: its CPU dry run end to end on a tiny model and a tiny
BEIR folder, the teacher's way back (fp16 parts -> a float32 model folder), the unpacking of a pack, and the
time budget. Offline; no ../shared data."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_common  # noqa: E402
import gpu_restore  # noqa: E402

TOPICS = {
    "fruit": "apple pear plum cherry banana mango peach grape lemon lime",
    "vehicle": "car truck bus bicycle train tram scooter van lorry taxi",
    "weather": "rain snow wind storm cloud sun fog hail thunder frost",
    "music": "piano guitar violin drum flute trumpet cello harp organ choir",
    "animal": "dog cat horse cow sheep goat lion tiger bear wolf",
    "tool": "hammer saw drill wrench chisel pliers file plane level clamp",
}
STEPS = ["1_encode", "2_ingest", "3_serve", "4_resume", "5_teacher"]


def _tiny_model(folder: Path) -> Path:
    """A 2-layer BERT (hidden 32) with the MiniLM tokenizer, as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tamis import default_model_path

    hf = folder.parent / (folder.name + "-hf")
    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(str(hf))
    tok.save_pretrained(str(hf))
    st = SentenceTransformer(modules=[modules.Transformer(str(hf), max_seq_length=48), modules.Pooling(32, "mean"),
                                      modules.Normalize()], device="cpu")
    st.save(str(folder))
    return folder


def _tiny_beir(folder: Path, per_topic: int = 8) -> Path:
    """WordNet-shaped: one query (a gloss) per document (lemmas + examples); train / dev / test qrels."""
    rng = random.Random(0)
    (folder / "qrels").mkdir(parents=True)
    docs, queries, qrels = [], [], {"train": [], "dev": [], "test": []}
    for topic, words in TOPICS.items():
        for i in range(per_topic):
            w = rng.sample(words.split(), 4)
            docs.append({"_id": f"{topic}-{i}", "title": f"{w[0]}, {w[1]}", "text": f"the {w[0]} and the {w[2]}"})
            queries.append({"_id": f"q-{topic}-{i}", "text": f"a kind of {topic} like {w[0]} or {w[1]}"})
            split = "train" if i < per_topic - 2 else ("dev" if i == per_topic - 2 else "test")
            qrels[split].append((f"q-{topic}-{i}", f"{topic}-{i}"))
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    for split, rows in qrels.items():
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in rows))
    return folder


@pytest.fixture(scope="module")  # ~30 s on 2 idle cores: all five steps, two subprocesses (tests using it are slow)
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    base = tmp_path_factory.mktemp("gpu-dry")
    model, data, out = _tiny_model(base / "model"), _tiny_beir(base / "data"), base / "out"
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--cpu-dry-run", "--out", str(out),
           "--model", str(model), "--data", str(data), "--work", str(base / "work")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=REPO, env={**os.environ, "OUT": ""})
    report = json.loads((out / "gpu_check.json").read_text())
    return proc, report, out


def _checks(report: dict, step: str) -> dict[str, bool]:
    return {name: c["pass"] for name, c in report["steps"][step]["checks"].items()}


@pytest.mark.slow
def test_the_dry_run_runs_every_step(dry_run: tuple) -> None:
    proc, report, out = dry_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert report["mode"] == "cpu-dry-run" and "finished" in report and not report.get("fatal")
    assert list(report["steps"]) == STEPS
    for key, step in report["steps"].items():
        assert step["status"] in ("pass", "fail"), (key, step.get("error") or step.get("reason"))
        assert step["checks"] and step["seconds"] >= 0 and step["budget_s"] > 0
    assert report["preflight"]["modules"]["tamis"].split()[0] != "MISSING"
    assert "edge" in report["preflight"]["entry_points"]["tamis.stores"]
    log = (out / "gpu_check.log").read_text()
    assert "== step 5_teacher" in log and "done in" in log


@pytest.mark.slow
def test_each_step_measures_what_the_issue_asks(dry_run: tuple) -> None:
    _, report, _ = dry_run
    steps = {k: v["details"] for k, v in report["steps"].items()}
    assert {"parity_float16", "parity_bfloat16", "speed_short", "speed_long"} <= steps["1_encode"].keys()
    assert set(_checks(report, "1_encode")) == {"parity_float16_min_cosine", "parity_bfloat16_min_cosine",
                                                "speed_short_tamis_vs_bare", "speed_long_tamis_vs_bare"}
    assert _checks(report, "2_ingest") == {"index_complete": True, "store_only_complete": True}
    assert steps["2_ingest"]["tamis_index"]["report"]["documents"] == 48
    assert "bottleneck" in steps["2_ingest"]["verdict"]
    serve = _checks(report, "3_serve")
    assert serve["embed_16_clients_no_errors"] and serve["embed_64_clients_no_errors"] and serve["retriever_returns_hits"]
    assert "ainvoke_speedup" in serve  # >= 3x is for the GPU; on 2 busy cores it is only measured
    assert {"base", "contrastive", "distilled"} <= steps["5_teacher"]["test"].keys()
    assert "teacher_beats_student_top20" in _checks(report, "5_teacher")


@pytest.mark.slow
def test_a_killed_run_resumes_bit_for_bit(dry_run: tuple) -> None:
    _, report, _ = dry_run
    step = report["steps"]["4_resume"]
    assert step["status"] == "pass", step
    assert step["checks"]["same_weights_as_uninterrupted"]["value"] == 0.0
    assert step["details"]["checkpoint_rng_states"] == ["cpu"]  # "cuda" joins it on the GPU


@pytest.mark.slow
def test_the_teacher_comes_back_as_parts_and_restores(dry_run: tuple, tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    _, report, out = dry_run
    manifest = report["steps"]["5_teacher"]["details"]["teacher_export"]
    assert manifest["parts"] and all((out / p).stat().st_size <= gpu_restore.PART_BYTES for p in manifest["parts"])
    teacher = gpu_restore.restore_model(out, tmp_path / "teacher")
    scores = CrossEncoder(str(teacher), device="cpu").predict([("a kind of fruit", "apple, pear"), ("a tool", "rain")])
    assert scores.shape == (2,)
    with pytest.raises(SystemExit, match="exists"):
        gpu_restore.restore_model(out, teacher)


def test_restore_unpacks_only_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pack with a wheel the environment lacks and one it has (pydantic): only the first is unpacked."""
    import torch
    from safetensors.torch import load_file, save_file

    pack, stage = tmp_path / "pack", tmp_path / "stage"
    for name, files in {"fakepkg-1.0-py3-none-any": ["fakepkg/__init__.py", "fakepkg-1.0.dist-info/METADATA"],
                        "pydantic-0.1-py3-none-any": ["pydantic/__init__.py"]}.items():
        for f in files:
            (stage / "w" / name / f).parent.mkdir(parents=True, exist_ok=True)
            (stage / "w" / name / f).write_text("Name: fakepkg\nVersion: 1.0\n" if f.endswith("METADATA") else "")
    weights = stage / "m" / "fake_model" / "model" / "model.fp16.safetensors"
    weights.parent.mkdir(parents=True)
    save_file({"w": torch.ones(3, dtype=torch.float16), "ids": torch.arange(3)}, str(weights), metadata={"format": "pt"})
    (stage / "d" / "beir").mkdir(parents=True)
    (stage / "d" / "beir" / "corpus.jsonl").write_text("{}\n")
    pack.mkdir()
    for archive, root in (("wheels.tar.xz", stage / "w"), ("model.tar.xz", stage / "m"), ("data.tar.xz", stage / "d")):
        with tarfile.open(pack / archive, "w:xz") as tar:
            for child in root.iterdir():
                tar.add(child, arcname=child.name)
    (pack / gpu_restore.MANIFEST).write_text(json.dumps({
        "wheels_archive": "wheels.tar.xz", "model_archive": "model.tar.xz", "data_archive": "data.tar.xz",
        "model_weights": "fake_model/model/model.fp16.safetensors", "data_folder": "beir",
        "wheels": [{"dist": "fakepkg", "version": "1.0", "dir": "fakepkg-1.0-py3-none-any"},
                   {"dist": "pydantic", "version": "0.1", "dir": "pydantic-0.1-py3-none-any"}]}))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")

    done = gpu_restore.restore(pack, tmp_path / "work")
    assert done.installed == ["fakepkg 1.0"] and [s.split()[0] for s in done.already_there] == ["pydantic"]
    assert (done.site / "fakepkg" / "__init__.py").is_file() and not (done.site / "pydantic").exists()
    restored = load_file(str(done.site / "fake_model" / "model" / "model.safetensors"))
    assert restored["w"].dtype == torch.float32 and restored["ids"].dtype == torch.int64
    assert weights.name not in {p.name for p in done.site.rglob("*")}
    assert (done.data / "corpus.jsonl").is_file()
    assert sys.path[0] == str(done.site) and os.environ["PYTHONPATH"] == f"{done.site}{os.pathsep}/elsewhere"


def test_steps_share_the_deadline_and_a_late_one_is_skipped(tmp_path: Path) -> None:
    ran: list[str] = []

    def ok(ctx: object, io: gpu_common.StepIO) -> None:
        ran.append("ok")
        io.check("fine", 1, True, "== 1")

    def boom(ctx: object, io: gpu_common.StepIO) -> None:
        raise ValueError("broken")

    report = gpu_common.Report(tmp_path, {"mode": "test"})
    steps = [gpu_common.Step("a", "ok", ok, 5, 1), gpu_common.Step("b", "boom", boom, 5, 1),
             gpu_common.Step("c", "needs more time", ok, None, 50)]
    gpu_common.run_steps(steps, None, report, time.monotonic() + 20, reserve_s=0)
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["status"] for s in saved["steps"].values()] == ["pass", "error", "skipped"]
    assert saved["steps"]["b"]["error"] == "ValueError: broken" and "out of time" in saved["steps"]["c"]["reason"]
    assert saved["steps"]["a"]["budget_s"] <= 5 and ran == ["ok"]
    assert saved["summary"] == {"pass": ["a"], "error": ["b"], "skipped": ["c"]}


def test_ranking_metrics() -> None:
    m = gpu_common.ranking_metrics({"q1": ["a", "b"], "q2": ["c", "d"]}, {"q1": {"b": 1}, "q2": {"x": 1}})
    assert m["MRR@10"] == pytest.approx(0.25) and m["nDCG@10"] == pytest.approx(0.5 * (1 / 1.584962500721156))
