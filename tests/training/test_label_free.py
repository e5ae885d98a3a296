"""Label-free domain adaptation (pseudo-queries), contrastive + distillation in one run, and the
false-negative guard of both (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from trainkit import FAST

from tamis import ConfigError, DataError


def _beir_with_titles(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    docs = [
        {"_id": "a", "title": "mourn", "text": "She mourned her husband. They grieved for years."},
        {"_id": "b", "title": "hog-tie", "text": ""},
        {"_id": "c", "title": "", "text": "One sentence only"},
        {"_id": "d", "title": "", "text": "Python has classes. Classes bundle data and functions."},
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    qs = [{"_id": q, "text": f"query {q}"} for q in ("q1", "q2", "q3")]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in qs))
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq3\ta\t1\n")
    return folder


def test_pseudo_query_constructions(tmp_path: Path) -> None:
    from tamis.training import TrainConfig
    from tamis.training._pseudo import make_pseudo_queries

    root = _beir_with_titles(tmp_path / "d")

    def make(how: str) -> dict[str, tuple[str, str | None]]:
        pq = make_pseudo_queries(root, TrainConfig(method="distill", teacher="t", labels=False, pseudo_queries=how))
        return {q: (t, pq.positive.get(q)) for q, t in pq.queries.items()}

    assert make("title") == {"pseudo-a": ("mourn", "She mourned her husband. They grieved for years.")}
    assert make("body") == {"pseudo-a": ("She mourned her husband. They grieved for years.", "mourn")}
    first = make("first-sentence")
    assert first["pseudo-d"] == ("Python has classes.", "Classes bundle data and functions.")
    assert first["pseudo-a"] == ("She mourned her husband.", "mourn They grieved for years.")
    auto = make("auto")  # title where there is one (and a text), else the first sentence
    assert auto["pseudo-a"][0] == "mourn" and auto["pseudo-d"][0] == "Python has classes." and len(auto) == 2
    # real queries without judgements: the ones judged in test are held out, and there is no positive
    assert make("queries") == {"q1": ("query q1", None), "q2": ("query q2", None)}
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "corpus.jsonl").write_text(json.dumps({"_id": "x", "text": "no title, one sentence"}) + "\n")
    with pytest.raises(DataError, match="made no query"):
        make_pseudo_queries(tmp_path / "one", TrainConfig(method="distill", teacher="t", labels=False,
                                                          pseudo_queries="title"))
    with pytest.raises(ConfigError, match="needs method 'distill'"):
        TrainConfig(method="contrastive", labels=False)
    with pytest.raises(ConfigError, match="doc2query_model"):
        TrainConfig(method="distill", teacher="t", labels=False, pseudo_queries="doc2query")


def test_doc2query_generator_code_path(tmp_path: Path, corpus: Path) -> None:
    """A user's seq2seq generator writes the queries (a tiny random T5 here: the text is noise, the path is real)."""
    from _train_fixtures import tiny_doc2query

    from tamis.training import TrainConfig
    from tamis.training._pseudo import make_pseudo_queries

    gen = tiny_doc2query(tmp_path / "t5")
    cfg = TrainConfig(method="distill", teacher="t", labels=False, pseudo_queries="doc2query", doc2query_model=str(gen),
                      queries_per_document=2, max_train_queries=6, pseudo_dev_queries=0)
    pq = make_pseudo_queries(corpus, cfg)
    assert pq.construction == "doc2query" and 1 <= len(pq.queries) <= 6
    for q, text in pq.queries.items():
        assert text and pq.source[q] in q and pq.positive[q].startswith("This is about")


def test_label_free_on_a_corpus_alone_through_the_cli(tmp_path: Path, corpus: Path, models: dict[str, Path]) -> None:
    from sentence_transformers import SentenceTransformer
    from typer.testing import CliRunner

    from tamis.cli import app

    out = tmp_path / "student"
    res = CliRunner().invoke(app, [
        "train", str(corpus), "--out", str(out), "--method", "distill", "--no-labels", "--teacher", str(models["bi"]),
        "--base", str(models["student"]), "--pseudo-queries", "first-sentence", "--teacher-mining", "--candidates", "4",
        "--batch-size", "8", "--epochs", "1", "--device", "cpu", "--json",
    ])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["method"] == "distill" and result["steps"] > 0 and result["teacher_pairs_computed"] > 0
    chk = result["teacher_check"]  # no dev qrels: the check runs on held-out pseudo-queries
    assert chk["on"] == "pseudo-queries" and chk["teacher_kind"] == "bi-encoder" and "student_ndcg@10" in chk
    assert result["dev_before"] and result["dev_after"]  # on the same held-out pseudo-queries
    meta = json.loads((out / "tamis_model.json").read_text())
    assert meta["settings"]["labels"] is False and meta["data"]["pseudo_queries"] == "first-sentence"
    assert meta["settings"]["teacher_mining"] is True
    assert meta["data"]["split"] == "pseudo" and meta["data"]["dev"]["split"] == "pseudo-dev"
    card = (out / "README.md").read_text()
    assert "held-out pseudo-queries" in card and "pseudo-queries (first-sentence, no labels)" in card
    SentenceTransformer(str(out), device="cpu").encode(["fruit"])


def test_the_guard_keeps_near_copies_of_the_positive_out_of_the_lists() -> None:
    from tamis.training import TrainConfig
    from tamis.training._recipes import guarded_lists

    class Teacher:  # the teacher's judgement: the near-copy is as relevant as the positive
        def probabilities(self, pairs: list[tuple[str, str]]) -> np.ndarray:
            return np.array([0.9 if d in ("pos", "near copy") else 0.1 for _, d in pairs])

    cfg = TrainConfig(method="distill", teacher="t", candidates=3, mining_depth=8)
    lists = guarded_lists([("q", "pos", ["near copy", "neg 1", "neg 2"], ["r1", "r2"])], Teacher(), cfg)
    assert lists == [("q", ["pos", "neg 1", "neg 2"])]
    # without a positive (unjudged queries) the teacher's best candidate stands in for it
    lists = guarded_lists([("q", None, ["neg 1", "pos", "neg 2"], ["r1"])], Teacher(), cfg)
    assert lists == [("q", ["pos", "neg 1", "neg 2"])]
    lists = guarded_lists([("q", "pos", ["near copy"], ["r1", "r2"])], Teacher(), cfg)  # topped up
    assert lists == [("q", ["pos", "r1", "r2"])]
    with pytest.raises(DataError, match="too small"):
        guarded_lists([("q", "pos", ["near copy"], [])], Teacher(), cfg)


def test_contrastive_plus_distill_is_one_loss(tmp_path: Path, beir: Path, models: dict[str, Path]) -> None:
    from sentence_transformers import SentenceTransformer

    from tamis.training import TrainConfig, train_bi_encoder
    from tamis.training._recipes import student_loss

    st = SentenceTransformer(str(models["student"]), device="cpu")
    loss = student_loss(st, TrainConfig(method="contrastive+distill", teacher="t", distill_weight=0.5, scale=30.0))
    assert loss.get_config_dict()["kl_weight"] == 0.5 and loss.infonce_weight == 1.0 and loss.infonce_scale == 30.0
    out = tmp_path / "cd"
    r = train_bi_encoder(beir, out, method="contrastive+distill", base=str(models["student"]),
                         teacher=str(models["cross"]), candidates=4, mining_depth=8, cache_dir=str(tmp_path / "c"), **FAST)
    assert r.steps > 0 and r.teacher_pairs_computed > 0 and r.teacher_check is not None
    meta = json.loads((out / "tamis_model.json").read_text())
    assert meta["method"] == "contrastive+distill" and meta["loss"] == "ListwiseDistillLoss"
    with pytest.raises(ConfigError, match="needs a teacher"):
        TrainConfig(method="contrastive+distill")


def test_teacher_mining_puts_the_teachers_nearest_documents_in_the_lists(
    tmp_path: Path, beir: Path, models: dict[str, Path]
) -> None:
    """With teacher_mining a bi-encoder teacher's own nearest document reaches the list (as the
    positive of an unjudged query) even where the student does not rank it near the top."""
    from sentence_transformers import SentenceTransformer

    from tamis.training import TrainConfig, load_teacher
    from tamis.training._label_free import _interleave, _teacher_search, label_free_data, label_free_examples

    merged = _interleave({"q": {"a": 0.9, "b": 0.8, "c": 0.7}}, {"q": {"x": 5.0, "a": 4.0}, "r": {"y": 1.0}})
    assert [d for d, _ in sorted(merged["q"].items(), key=lambda kv: -kv[1])] == ["a", "x", "b", "c"]
    assert list(merged["r"]) == ["y"]
    student = SentenceTransformer(str(models["student"]), device="cpu")
    teacher = load_teacher(str(models["bi"]), cache_dir=tmp_path / "c", device="cpu")
    common = dict(method="distill", teacher="t", labels=False, pseudo_queries="queries", candidates=3, mining_depth=2,
                  pseudo_dev_queries=0, dev_queries=0, seed=0, false_negative_margin=0.0)

    def positives(**kw: object) -> tuple[dict[str, str], dict[str, str]]:
        cfg = TrainConfig(**common, **kw)
        lf = label_free_data(beir, cfg, "cpu")
        ds, _ = label_free_examples(student, lf, teacher, cfg)
        best = _teacher_search(teacher, lf.train.corpus, lf.pseudo.queries, 1)
        top = {lf.pseudo.queries[q]: lf.train.corpus[next(iter(hits))] for q, hits in best.items()}
        return {r["query"]: r["document_0"] for r in ds}, top

    got, top = positives(teacher_mining=True)
    assert got == top and len(got) == 36  # the 36 train queries, unjudged
    plain, _ = positives()
    assert sum(plain[q] != top[q] for q in plain) > 0  # the student's top 2 miss some of the teacher's best
    cross = load_teacher(str(models["cross"]), cache_dir=tmp_path / "c", device="cpu")
    cfg = TrainConfig(**common, teacher_mining=True)
    with pytest.raises(ConfigError, match="needs a bi-encoder teacher"):
        label_free_examples(student, label_free_data(beir, cfg, "cpu"), cross, cfg)
    with pytest.raises(ConfigError, match="label-free"):
        TrainConfig(method="distill", teacher="t", teacher_mining=True)


def test_raw_teacher_scores_keep_the_teachers_own_spread(models: dict[str, Path]) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from tamis.training import TrainConfig
    from tamis.training._recipes import student_loss

    st = SentenceTransformer(str(models["student"]), device="cpu")
    cos = torch.tensor([[0.62, 0.60, 0.20], [0.9, 0.1, 0.0]])
    minmax = student_loss(st, TrainConfig(method="distill", teacher="t"))
    raw = student_loss(st, TrainConfig(method="distill", teacher="t", teacher_scores="raw", teacher_temperature=0.05,
                                       infonce_weight=0.0))
    assert raw.get_config_dict()["teacher_scores"] == "raw" and raw.kl.teacher_temperature == 0.05
    # min-max stretches the first list (spread 0.42) to 0..1; raw keeps the cosines
    assert torch.allclose(raw.teacher_targets(cos), cos)
    assert torch.allclose(minmax.teacher_targets(cos)[0], torch.tensor([1.0, 0.40 / 0.42, 0.0]), atol=1e-6)
    with pytest.raises(ConfigError, match="teacher_scores"):
        TrainConfig(method="distill", teacher="t", teacher_scores="zscore")
