"""`tamis demo`: self-supervised calibration on stdlib docstrings; an off-topic question comes back empty."""

import pytest
from rich.console import Console

from tamis.cli._demo import OFF_TOPIC_QUESTION, calibration_pairs, stdlib_docstrings


def test_calibration_pairs_are_summary_lines_of_other_text():
    docs = stdlib_docstrings(300)
    queries, qrels = calibration_pairs(docs)
    assert len(queries) > 50
    by_id = {d.id: d for d in docs}
    for qid, text in list(queries.items())[:50]:
        (doc_id,) = qrels[qid]
        assert text == by_id[doc_id].metadata["summary"] and text not in by_id[doc_id].text


@pytest.mark.slow
def test_demo_calibrates_and_answers_off_topic_with_nothing(tmp_path, minilm):
    from tamis.cli._demo import run_demo

    out = Console(file=open(tmp_path / "out.txt", "w"), width=200)  # noqa: SIM115
    res = run_demo(out, Console(stderr=True), path=tmp_path / "home", limit=300, encoder=minilm,
                   questions=["How do I parse command line arguments?"], calibration_queries=200)
    out.file.close()
    text = (tmp_path / "out.txt").read_text()
    assert res["adapter"] is not None and "calibrated a Cosine Adapter" in text
    assert res["answers"][OFF_TOPIC_QUESTION] == []
    assert "nothing relevant" in text
