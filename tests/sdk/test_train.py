"""Training and distillation (issue 4) on tiny models: seconds each, offline."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_fixtures import tiny_beir, tiny_bi_encoder

from tamis import ConfigError, DataError, ModelError

FAST = dict(epochs=1, batch_size=8, progress=False, dev_queries=6, encode_batch_size=32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bi_encoder(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_beir(tmp_path_factory.mktemp("data") / "beir")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory, tiny: Path, beir: Path) -> Path:
    from tamis.training import train_reranker

    out = tmp_path_factory.mktemp("teachers") / "teacher"
    result = train_reranker(beir, out, base=str(tiny), miner=str(tiny), num_negatives=3, mining_depth=8, **FAST)
    assert result.kind == "cross-encoder" and result.examples > 0
    return out


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if ".tamis-tmp-" in p.name or ".tamis-work" in p.name]


# -- the teacher ------------------------------------------------------------------------------------
def test_reranker_is_a_plain_cross_encoder(teacher: Path) -> None:
    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(str(teacher), device="cpu")
    scores = ce.predict([("which fruit is apple", "fruit apple pear"), ("which tool", "rain snow")])
    assert scores.shape == (2,)
    meta = json.loads((teacher / "tamis_model.json").read_text())
    assert meta["kind"] == "cross-encoder" and meta["method"] == "bce"
    _no_leftovers(teacher.parent)


def test_reranker_negatives_mix_hard_and_random(tmp_path: Path, tiny: Path, beir: Path) -> None:
    """Each query gets num_negatives hard + random_negatives random documents (BCE rows: 1 + both)."""
    from tamis.data import load_training_data
    from tamis.training import train_reranker

    positives = load_training_data(beir, "train").positives()
    for hard, rand in ((2, 0), (2, 3)):
        out = tmp_path / f"t{hard}{rand}"
        res = train_reranker(beir, out, base=str(tiny), miner=str(tiny), num_negatives=hard, random_negatives=rand,
                             mining_depth=8, max_steps=1, **FAST)
        assert res.examples == sum(len(p) + hard + rand for p in positives.values())
    with pytest.raises(ConfigError, match="random_negatives"):
        train_reranker(beir, tmp_path / "bad", base=str(tiny), random_negatives=-1, **FAST)
    assert not (tmp_path / "bad").exists()
    _no_leftovers(tmp_path)


@pytest.mark.slow
def test_reranker_listwise(tmp_path: Path, tiny: Path, beir: Path) -> None:
    from sentence_transformers import CrossEncoder

    from tamis.training import train_reranker

    result = train_reranker(beir, tmp_path / "t", base=str(tiny), miner=str(tiny), loss="listwise",
                            num_negatives=3, mining_depth=8, **FAST)
    assert result.method == "listwise"
    assert CrossEncoder(str(tmp_path / "t"), device="cpu").predict([("a", "b")]).shape == (1,)


# -- the student: every method end to end -------------------------------------------------------------
@pytest.mark.parametrize("method", ["contrastive", "distill", "augmented"])
def test_every_method_end_to_end(method: str, tmp_path: Path, tiny: Path, beir: Path, teacher: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from tamis.training import train_bi_encoder

    out = tmp_path / method
    result = train_bi_encoder(
        beir, out, method=method, base=str(tiny), teacher=None if method == "contrastive" else str(teacher),
        candidates=4, mining_depth=8, silver_per_query=3, **FAST,
    )
    assert result.steps > 0 and result.examples > 0
    assert set(result.dev_before) >= {"nDCG@10", "Recall@10"} and set(result.dev_after) == set(result.dev_before)
    if method != "contrastive":  # the teacher was checked against the base model on dev first
        assert result.teacher_check is not None and 0 <= result.teacher_check["teacher_ndcg@10"] <= 1
    model = SentenceTransformer(str(out), device="cpu")  # plain sentence-transformers loads it
    vecs = model.encode(["which fruit is apple", "car truck"])
    assert vecs.shape == (2, 32)
    assert not np.allclose(vecs, SentenceTransformer(str(tiny), device="cpu").encode(["which fruit is apple", "car truck"]))
    card = (out / "README.md").read_text()
    assert method in card and "Dev metrics" in card and "before" in card
    meta = json.loads((out / "tamis_model.json").read_text())
    assert meta["method"] == method and meta["result"]["dev_after"]
    _no_leftovers(tmp_path)


def test_distill_margin_mse(tmp_path: Path, tiny: Path, beir: Path, teacher: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from tamis.training import train_bi_encoder

    result = train_bi_encoder(beir, tmp_path / "m", method="distill", distill_loss="margin_mse", base=str(tiny),
                              teacher=str(teacher), candidates=3, mining_depth=6, **FAST)
    assert json.loads((tmp_path / "m" / "tamis_model.json").read_text())["loss"] == "MarginMSELoss"
    assert result.steps > 0
    SentenceTransformer(str(tmp_path / "m"), device="cpu")


# -- the false-negative guard ----------------------------------------------------------------------
class _PlantedTeacher:
    """A stand-in teacher: the planted near-copy of the positive is as relevant as the positive."""

    def probabilities(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.array([0.95 if d.startswith("fruit apple") or "indeed" in d else 0.05 for _, d in pairs])


def test_false_negative_guard_drops_a_planted_false_negative(beir: Path) -> None:
    from tamis.data import load_training_data
    from tamis.training import TrainConfig
    from tamis.training._data import drop_false_negatives
    from tamis.training._recipes import contrastive_examples

    td = load_training_data(beir, "train")
    q = "q-fruit-0"
    assert td.corpus["fruit-0-copy"].endswith("indeed")
    # fruit-0's own title starts with "fruit <word>"; make the stand-in teacher see it as the positive
    td.corpus["fruit-0"] = "fruit apple " + td.corpus["fruit-0"]
    mined = {q_: [("vehicle-1", 0.2), ("weather-1", 0.1)] for q_ in td.positives()}
    mined[q] = [("fruit-0-copy", 0.9), ("vehicle-1", 0.2), ("weather-1", 0.1)]

    # without the guard the near-copy is the hardest negative
    assert drop_false_negatives(mined[q])[0][0] == "fruit-0-copy"
    # rank-window guard (no teacher)
    assert [d for d, _ in drop_false_negatives(mined[q], skip_top=1)] == ["vehicle-1", "weather-1"]
    # teacher guard, through the contrastive recipe
    cfg = TrainConfig(method="contrastive", teacher="unused", num_negatives=1, mining_depth=8)
    ds, _ = contrastive_examples(td, mined, _PlantedTeacher(), cfg)  # type: ignore[arg-type]
    row = next(r for r in ds if r["positive"] == td.corpus["fruit-0"])
    assert row["negative_1"] == td.corpus["vehicle-1"]
    assert td.corpus["fruit-0-copy"] not in ds["negative_1"]


def test_an_exact_copy_of_the_positive_is_never_a_negative(beir: Path) -> None:
    """A document with the positive's exact text (WordNet: two senses, same lemmas, no examples) would ask
    the model to score one pair both high and low: every recipe drops it from the negatives."""
    from tamis.data import load_training_data
    from tamis.training import TrainConfig
    from tamis.training._data import drop_copies_of_positives
    from tamis.training._recipes import contrastive_examples, distill_examples

    td = load_training_data(beir, "train")
    q = "q-fruit-0"
    td.corpus["fruit-0-twin"] = td.corpus["fruit-0"]
    mined = {q_: [("vehicle-1", 0.2), ("weather-1", 0.1), ("music-1", 0.05)] for q_ in td.positives()}
    mined[q] = [("fruit-0-twin", 0.99), ("vehicle-1", 0.2), ("weather-1", 0.1), ("music-1", 0.05)]
    assert [d for d, _ in drop_copies_of_positives(mined[q], ["fruit-0"], td.corpus)] == [
        "vehicle-1", "weather-1", "music-1"]

    ds, _ = contrastive_examples(td, mined, None, TrainConfig(num_negatives=1, mining_depth=8))
    row = next(r for r in ds if r["anchor"] == td.queries[q])
    assert row["negative_1"] == td.corpus["vehicle-1"]

    class _Flat:
        def logits(self, pairs: list[tuple[str, str]]) -> np.ndarray:
            return np.zeros(len(pairs), dtype=np.float32)

    cfg = TrainConfig(method="distill", teacher="unused", candidates=3, mining_depth=8)
    dd, _ = distill_examples(td, mined, _Flat(), cfg)  # type: ignore[arg-type]
    row = next(r for r in dd if r["query"] == td.queries[q])
    assert [row["document_1"], row["document_2"]] == [td.corpus["vehicle-1"], td.corpus["weather-1"]]


# -- teacher scores are cached; a resumed run does not recompute them ----------------------------------
def test_teacher_scores_cached_and_resumed(tmp_path: Path, tiny: Path, beir: Path, teacher: Path) -> None:
    from tamis.training import TeacherScorer, train_bi_encoder

    cache = tmp_path / "cache"
    opts = dict(method="distill", base=str(tiny), teacher=str(teacher), candidates=4, mining_depth=8,
                cache_dir=str(cache), max_steps=1, **FAST)
    first = train_bi_encoder(beir, tmp_path / "a", **opts)
    assert first.teacher_pairs_computed > 0 and first.teacher_pairs_reused == 0
    files = list((cache / "teacher-scores").glob("*.jsonl"))
    assert len(files) == 1 and not any(f.suffix in (".pkl", ".pickle") for f in cache.rglob("*"))

    second = train_bi_encoder(beir, tmp_path / "b", **opts)
    assert second.teacher_pairs_computed == 0
    assert second.teacher_pairs_reused == first.teacher_pairs_computed

    # an interrupted scoring run: only the first chunk made it to disk, and a torn line after it
    lines = files[0].read_text().splitlines()
    TeacherScorer.chunk = 50
    try:
        scorer = TeacherScorer(teacher, cache_dir=cache, device="cpu")
        files[0].write_text(lines[0][: len(lines[0]) // 2] + "\n")  # only a torn line
        scorer = TeacherScorer(teacher, cache_dir=cache, device="cpu")
        pairs = [(f"query {i}", f"document {i}") for i in range(120)]
        scorer.logits(pairs[:50])
        assert scorer.computed == 50
        resumed = TeacherScorer(teacher, cache_dir=cache, device="cpu")
        again = resumed.logits(pairs)
        assert resumed.computed == 70 and resumed.reused == 50
        assert np.allclose(again[:50], scorer.logits(pairs[:50]))
    finally:
        TeacherScorer.chunk = 512


# -- LoRA and Matryoshka -----------------------------------------------------------------------------
def test_lora_and_matryoshka_give_loadable_models(tmp_path: Path, tiny: Path, beir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from tamis.training import train_bi_encoder

    out = tmp_path / "lm"
    train_bi_encoder(beir, out, method="contrastive", base=str(tiny), lora=True, lora_rank=4, lora_alpha=8,
                     matryoshka_dims=(32, 16, 8), mining_depth=8, learning_rate=1e-3, **FAST)
    assert not (out / "adapter_config.json").exists()  # merged: a plain model
    model = SentenceTransformer(str(out), device="cpu", truncate_dim=16)
    assert model.encode(["which fruit is apple"]).shape == (1, 16)
    full = SentenceTransformer(str(out), device="cpu")
    assert full.encode(["x"]).shape == (1, 32)
    meta = json.loads((out / "tamis_model.json").read_text())
    assert meta["settings"]["lora"] is True and meta["settings"]["matryoshka_dims"] == [32, 16, 8]


def test_matryoshka_dims_beyond_the_model_are_refused(tmp_path: Path, tiny: Path, beir: Path) -> None:
    from tamis.training import train_bi_encoder

    with pytest.raises(ConfigError, match="matryoshka_dims"):
        train_bi_encoder(beir, tmp_path / "x", base=str(tiny), matryoshka_dims=(64, 16), **FAST)
    assert not (tmp_path / "x").exists()


# -- bad input -----------------------------------------------------------------------------------------
def _copy(beir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(beir, dst)
    return dst


def test_empty_training_split(tmp_path: Path, tiny: Path, beir: Path) -> None:
    from tamis.training import train_bi_encoder, train_reranker

    data = _copy(beir, tmp_path)
    (data / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n")
    for fn in (train_bi_encoder, train_reranker):
        with pytest.raises(DataError, match="no relevant"):
            fn(data, tmp_path / "out", base=str(tiny), **FAST)
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path)


def test_qrels_naming_unknown_ids(tmp_path: Path, tiny: Path, beir: Path) -> None:
    from tamis.training import train_bi_encoder

    data = _copy(beir, tmp_path)
    with open(data / "qrels" / "train.tsv", "a") as fh:
        fh.write("q-fruit-0\tno-such-doc\t1\nno-such-query\tfruit-1\t1\n")
    with pytest.raises(DataError, match="unknown document id.*no-such-doc") as exc:
        train_bi_encoder(data, tmp_path / "out", base=str(tiny), **FAST)
    assert "no-such-query" in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_teacher_that_is_no_kind_of_teacher(tmp_path: Path, tiny: Path, beir: Path) -> None:
    from tamis.training import train_bi_encoder

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "config.json").write_text('{"architectures": ["BertModel"]}')
    with pytest.raises(ModelError, match="not a cross-encoder.*nor a sentence-transformers bi-encoder"):
        train_bi_encoder(beir, tmp_path / "out", method="distill", base=str(tiny), teacher=str(junk), **FAST)
    with pytest.raises(ModelError, match="not a cross-encoder"):  # the kind named, and it does not fit
        train_bi_encoder(beir, tmp_path / "out", method="distill", base=str(tiny), teacher=f"cross-encoder:{tiny}", **FAST)
    assert not (tmp_path / "out").exists()


def test_output_folder_that_is_not_a_tamis_model(tmp_path: Path, tiny: Path, beir: Path, teacher: Path) -> None:
    from tamis.training import train_bi_encoder, train_reranker

    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a tamis model"):
        train_bi_encoder(beir, out, base=str(tiny), **FAST)
    with pytest.raises(ConfigError, match="not a tamis model"):
        train_reranker(beir, out, base=str(tiny), **FAST)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    _no_leftovers(tmp_path)


def test_a_tamis_model_folder_is_replaced_whole(tmp_path: Path, tiny: Path, beir: Path) -> None:
    from tamis.training import train_bi_encoder

    out = tmp_path / "m"
    train_bi_encoder(beir, out, base=str(tiny), max_steps=1, **FAST)
    first = json.loads((out / "tamis_model.json").read_text())["created"]
    (out / "stale.txt").write_text("from the first run")
    train_bi_encoder(beir, out, base=str(tiny), max_steps=1, seed=3, **FAST)
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "tamis_model.json").read_text())["settings"]["seed"] == 3
    assert first
    _no_leftovers(tmp_path)


def test_config_errors_name_the_options() -> None:
    from tamis.training import TrainConfig

    with pytest.raises(ConfigError, match="'contrastive', 'distill', 'contrastive\\+distill', 'augmented'"):
        TrainConfig(method="magic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs a teacher"):
        TrainConfig(method="distill")
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="'query_to_doc', 'doc_to_query'"):
        TrainConfig(directions=("query_to_doc", "sideways"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must include 'query_to_doc'"):
        TrainConfig(directions=("doc_to_query",))
    with pytest.raises(ConfigError, match="scale"):
        TrainConfig(scale=0)
    assert TrainConfig(directions="query_to_doc").directions == ("query_to_doc",)  # type: ignore[arg-type]


def test_contrastive_loss_takes_the_configured_directions(tmp_path: Path, tiny: Path, beir: Path) -> None:
    """GTE-style directions reach the loss, the run trains, and the card records them."""
    from sentence_transformers import SentenceTransformer

    from tamis.training import TrainConfig, train_bi_encoder
    from tamis.training._recipes import student_loss

    st = SentenceTransformer(str(tiny), device="cpu")
    dirs = ("query_to_doc", "doc_to_query", "query_to_query", "doc_to_doc")
    loss = student_loss(st, TrainConfig(directions=dirs, scale=30.0))
    assert tuple(loss.directions) == dirs and loss.scale == 30.0
    cached = student_loss(st, TrainConfig(directions=dirs[:2], mini_batch_size=4))
    assert type(cached).__name__ == "CachedMultipleNegativesRankingLoss" and tuple(cached.directions) == dirs[:2]
    out = tmp_path / "sym"
    result = train_bi_encoder(beir, out, base=str(tiny), mining_depth=8, directions=dirs, **FAST)
    assert result.steps > 0
    assert json.loads((out / "tamis_model.json").read_text())["settings"]["directions"] == list(dirs)


# -- the CLI -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_train_and_eval_model(tmp_path: Path, tiny: Path, beir: Path) -> None:
    from typer.testing import CliRunner

    from tamis.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["train", str(beir), "--out", str(tmp_path / "m"), "--base", str(tiny),
                              "--epochs", "1", "--batch-size", "8", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["method"] == "contrastive"
    res = runner.invoke(app, ["eval", "--model", str(tmp_path / "m"), "--data", str(beir), "--split", "test", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["queries"] == 6 and 0 <= payload["ranking"]["nDCG@10"] <= 1
    res = runner.invoke(app, ["train", str(beir), "--out", str(tmp_path / "d"), "--method", "distill"])
    assert res.exit_code == 2 and "needs a teacher" in res.output
    res = runner.invoke(app, ["train", str(beir), "--out", str(tmp_path / "s"), "--base", str(tiny), "--max-steps", "1",
                              "--batch-size", "8", "--directions", "query_to_doc,doc_to_query", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s" / "tamis_model.json").read_text())["settings"]["directions"] == [
        "query_to_doc", "doc_to_query"]
    res = runner.invoke(app, ["train", str(beir), "--out", str(tmp_path / "x"), "--directions", "sideways"])
    assert res.exit_code == 2 and "directions" in res.output and not (tmp_path / "x").exists()


# -- resumable checkpoints: JSON + safetensors only, never unpickled -------------------------------
_PICKLES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(next(folder.rglob("model.safetensors"))))


def _refuse(name: str):  # type: ignore[no-untyped-def]
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(f"{name} was called: tamis checkpoints must not use pickle")

    return refuse


@pytest.mark.parametrize("kind", [
    "bi-encoder", "label-free", pytest.param("contrastive+distill", marks=pytest.mark.slow),
    pytest.param("cross-encoder", marks=pytest.mark.slow),
])
def test_an_interrupted_run_resumes_from_its_checkpoint(
    kind: str, tmp_path: Path, tiny: Path, beir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    import tamis.training._trainer as trainer_mod
    from tamis.training import train_bi_encoder, train_reranker
    from tamis.training._checkpoints import SafeCheckpoints

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            if state.global_step == 2:
                raise KeyboardInterrupt("power cut")

    if kind == "bi-encoder":
        train, opts = train_bi_encoder, dict(method="contrastive")
    elif kind == "label-free":  # pseudo-queries labelled by a bi-encoder teacher
        train, opts = train_bi_encoder, dict(method="distill", labels=False, teacher=f"bi-encoder:{tiny}",
                                             candidates=4, mining_depth=8, cache_dir=str(tmp_path / "cache"))
    elif kind == "contrastive+distill":
        train, opts = train_bi_encoder, dict(method="contrastive+distill", teacher=str(tiny), candidates=4,
                                             mining_depth=8, cache_dir=str(tmp_path / "cache"))
    else:
        train, opts = train_reranker, dict(miner=str(tiny), num_negatives=3, mining_depth=8)
    opts |= dict(base=str(tiny), max_steps=4, checkpoint_steps=1, **FAST)
    reference = train(beir, tmp_path / "ref", **opts)  # the same run, never interrupted
    assert reference.resumed_from is None and reference.steps == 4

    out = tmp_path / "m"
    with monkeypatch.context() as m:
        m.setattr(trainer_mod, "_time_limit_callback", lambda minutes: [Crash()])
        m.setattr(torch, "save", _refuse("torch.save"))
        with pytest.raises(KeyboardInterrupt):
            train(beir, out, **opts)
    assert not out.exists()  # nothing half-written where the model goes
    ckpt = tmp_path / ".m.tamis-work" / "checkpoints" / "checkpoint-1"  # step 2 died before its save
    files = {str(f.relative_to(ckpt)) for f in ckpt.rglob("*") if f.is_file()}
    assert not {f for f in files if Path(f).suffix in _PICKLES}, files
    assert files >= {"model.safetensors", "trainer_state.json", "optimizer.json", "optimizer.safetensors",
                     "scheduler.json", "rng_state.json", "rng_state.safetensors"}
    saved = load_file(str(ckpt / "optimizer.safetensors"))
    assert any(k.startswith("state.0.exp_avg") for k in saved)
    assert json.loads((ckpt / "scheduler.json").read_text())["last_epoch"] == 1

    restored: dict[str, torch.Tensor] = {}
    load_optimizer = SafeCheckpoints._load_optimizer_and_scheduler

    def recording_load(self, checkpoint):  # type: ignore[no-untyped-def]
        load_optimizer(self, checkpoint)
        for idx, entries in self.optimizer.state_dict()["state"].items():
            restored.update({f"state.{idx}.{n}": t.detach().cpu().clone() for n, t in entries.items()})

    with monkeypatch.context() as m:
        m.setattr(torch, "load", _refuse("torch.load"))
        m.setattr(SafeCheckpoints, "_load_optimizer_and_scheduler", recording_load)
        result = train(beir, out, **opts)
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-1")
    assert result.steps == 4
    assert restored.keys() == saved.keys()
    assert all(torch.equal(restored[k], saved[k]) for k in saved)  # exp_avg, exp_avg_sq, step
    ref, resumed = _weights(tmp_path / "ref"), _weights(out)
    assert all(torch.equal(ref[k], resumed[k]) for k in ref)  # bit for bit the uninterrupted run
    _no_leftovers(tmp_path)


def test_a_checkpoint_with_pickle_files_is_never_loaded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tamis.training._checkpoints import SafeCheckpoints, last_checkpoint

    work = tmp_path / "work"
    old = work / "checkpoints" / "checkpoint-3"  # as an older tamis wrote it
    old.mkdir(parents=True)
    (old / "trainer_state.json").write_text("{}")
    (old / "optimizer.pt").write_bytes(b"pickled")
    (old / "training_args.bin").write_bytes(b"pickled")
    (work / "checkpoints" / "checkpoint-5").mkdir()  # torn: no trainer_state.json, skipped

    with caplog.at_level(logging.WARNING, logger="tamis"):
        assert last_checkpoint(work) is None
    assert "pickle files (optimizer.pt, training_args.bin)" in caplog.text and "starts fresh" in caplog.text
    assert not (work / "checkpoints").exists()  # the next checkpoints start from a clean folder

    # and the trainer refuses such a folder outright, before reading anything from it
    old.mkdir(parents=True)
    (old / "optimizer.pt").write_bytes(b"pickled")
    with pytest.raises(ModelError, match="pickle files.*optimizer.pt"):
        SafeCheckpoints._load_from_checkpoint(SafeCheckpoints(), str(old))


def test_cli_reindex_with_a_trained_model(tmp_path: Path, tiny: Path, beir: Path) -> None:
    from typer.testing import CliRunner

    from tamis import open_collection
    from tamis.cli import app
    from tamis.training import train_bi_encoder

    train_bi_encoder(beir, tmp_path / "new", base=str(tiny), max_steps=1, learning_rate=1e-3, **FAST)
    runner = CliRunner()
    res = runner.invoke(app, ["index", str(beir), "--collection", "c", "--model", str(tiny), "--backend", "torch"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["reindex", "--collection", "c", "--model", str(tmp_path / "new"), "--backend", "torch"])
    assert res.exit_code == 0, res.output
    assert "c__v2" in res.stdout
    with open_collection("c", backend="torch") as col:
        assert col.physical == "c__v2" and col.manifest["model"]["source"] == str(tmp_path / "new")
        assert col.count(documents=True) == 49
        assert col.search("which fruit is apple", k=3)
