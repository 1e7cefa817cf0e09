"""`rag eval`: the gold-file checks, and the real evaluation run against the index of all 25 replies."""
from __future__ import annotations

import json

import pytest

from conftest import REPO, run_rag
from rag.evaluate import GoldError, load_gold, score_question
from rag.types import Answer, Chunk, Citation, Hit

GOLD = REPO / "data" / "gold" / "qa.jsonl"


def _line(**kw):
    base = {"id": "x1", "question": "q", "answer": "", "answerable": False, "doc_ids": [], "evidence": [], "must_include": [], "type": "unanswerable"}
    base.update(kw)
    return json.dumps(base, ensure_ascii=False)


def test_gold_file_loads():
    items = load_gold(GOLD)
    assert len(items) >= 100
    assert {i.type for i in items} == {"fact", "section", "cross_doc", "paraphrase", "english", "unanswerable"}


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "invalid JSON"),
        (_line().replace('"type": "unanswerable"', '"kind": "x"'), "missing field"),
        (_line(type="other"), "type must be one of"),
        (_line(extra=1), "unknown field"),
        (_line(answerable="yes"), "answerable must be a boolean"),
    ],
)
def test_bad_gold_line_is_rejected_with_its_line_number(tmp_path, bad, message):
    p = tmp_path / "gold.jsonl"
    p.write_text(_line() + "\n\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(GoldError) as e:
        load_gold(p)
    assert f"{p}:3:" in str(e.value) and message in str(e.value)


def test_bad_gold_file_via_cli(tmp_path):
    p = tmp_path / "gold.jsonl"
    p.write_text(_line() + "\n" + "{oops\n", encoding="utf-8")
    r = run_rag("eval", "--gold", p, "--index", tmp_path / "none")
    assert r.returncode != 0
    assert ":2:" in r.stderr and "invalid JSON" in r.stderr and "Traceback" not in r.stderr


def test_scoring_normalises_both_sides():
    from rag.evaluate import GoldItem

    item = GoldItem("a", "q", "x", True, ["d"], ["348家"], ["2000元"], "fact")
    chunk = Chunk("d#0", "d", 0, "专精特新“小巨人” 348 家,每月 2000 元", [])
    ans = Answer("q", "每月２０００元[1]", False, [Citation(1, "d", "", "", "", chunk.text, 1.0)])
    r = score_question(item, [Hit(chunk, 1.0, 1)], ans, 1.0)
    assert r.first_hit_rank == 1 and r.must_include_ok and r.citation_valid


@pytest.mark.slow
def test_rag_eval_end_to_end(eval_index, tmp_path):
    out = tmp_path / "eval.json"
    rep = tmp_path / "report"
    r = run_rag("eval", "--gold", GOLD, "--index", eval_index, "--json", out, "--report", rep, timeout=1800, env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text(encoding="utf-8"))
    m = res["metrics"]
    for key in ("hit@1", "hit@3", "hit@5", "evidence_recall@5", "doc_recall@10", "mrr", "must_include", "abstain_accuracy",
                "false_abstain", "citation_valid", "unsupported_numbers", "latency_ms_p50", "latency_ms_p95"):
        assert key in m
    assert set(res["baselines"]) == {"bm25", "dense", "naive"}
    assert len(res["questions"]) == len(load_gold(GOLD))
    assert {"retrieved", "answer", "failed"} <= set(res["questions"][0])
    # the targets of the issue (measured on this gold set; see README for the figures)
    assert m["hit@1"] >= 0.90 and m["hit@3"] >= 0.97 and m["evidence_recall@5"] >= 0.95 and m["doc_recall@10"] >= 0.98
    assert m["abstain_accuracy"] >= 0.80 and m["citation_valid"] == 1.0
    assert m["must_include"] >= 0.90 and m["false_abstain"] <= 0.05
    for name, b in res["baselines"].items():
        assert m["hit@1"] > b["hit@1"], name
        assert m["mrr"] > b["mrr"], name
        assert m["evidence_recall@5"] >= b["evidence_recall@5"] - 0.01, name
    assert (rep / "report.md").is_file() and (rep / "metrics.png").stat().st_size > 1000
    text = (rep / "report.md").read_text(encoding="utf-8")
    assert "| metric | system | bm25 | dense | naive |" in text and "## Failed questions" in text


@pytest.mark.slow
@pytest.mark.parametrize("name", ["heldout", "blind", "final", "unseen"])
def test_held_out_gold_sets(eval_index, name):
    """Sets written by others from the documents only, without running the tool (data/gold/README.md): the
    figures that say how the system does on questions it was not tuned on. Thresholds sit a little under the
    measured values (README, Evaluation) so that a real regression fails."""
    from conftest import settings_for
    from rag.evaluate import run_eval

    res = run_eval(settings_for(eval_index), REPO / "data" / "gold" / f"{name}.jsonl", baselines=False)
    m = res["metrics"]
    assert m["hit@1"] >= 0.83 and m["hit@3"] >= 0.97 and m["evidence_recall@5"] >= 0.96 and m["doc_recall@10"] >= 0.96, m  # 62 replies indexed since the third session (blind: evidence_recall@5 and doc_recall@10 0.968)
    assert m["must_include"] >= 0.80 and m["abstain_accuracy"] >= 0.80 and m["false_abstain"] <= 0.08, m
    assert m["citation_valid"] == 1.0
