"""ChatService over the bundled index, in process (no browser): the hints a chat turn gets — the city filter
excluded the answer, the index is being updated, did you mean —, the retrieved passages the k setting shows,
the overview of a vague question, follow-up suggestions, a provider that is not installed, removal with undo."""
from __future__ import annotations

import pytest

from conftest import MORE, settings_for
from test_app import copy_index

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def svc(bundled_index, tmp_path_factory):
    from rag.webapp.service import ChatService

    return ChatService(settings_for(copy_index(bundled_index, tmp_path_factory.mktemp("svc") / "index")))


def turn(svc, q, cities=None, k=5, previous=None):
    from rag.webapp import Turn

    return svc.answer_turn(Turn(question=q), previous or [], cities or [], k, "extractive")


def test_filter_that_excludes_the_answer_says_so(svc):
    t = turn(svc, "沈阳市累计增加首贷户多少户?", cities=["营口市"])
    assert t.answer["abstained"]
    h = next(h for h in t.hints if h["kind"] == "filter")
    assert "营口市" in h["text"] and "沈阳市" in h["text"] and h["action"] == "unfilter"
    # the same question without the filter is answered
    assert "719户" in turn(svc, "沈阳市累计增加首贷户多少户?").answer["answer"]
    # no filter -> no filter hint
    assert not any(h["kind"] == "filter" for h in turn(svc, "广州市对小微企业的贷款贴息政策是什么?").hints)


def test_k_shows_the_other_retrieved_passages(svc):
    t8 = turn(svc, "营口市对博士每月补贴多少?", k=8)
    cited = {c["chunk_id"] for c in t8.citations}
    assert len(t8.retrieved) == 8 - len(cited) and not cited & {h["chunk_id"] for h in t8.retrieved}
    assert len(turn(svc, "营口市对博士每月补贴多少?", k=3).retrieved) == 3 - len(cited)


def test_index_being_updated_is_said(svc):
    with svc.ingesting(["dalian.txt"]):
        t = turn(svc, "大连市对首贷户有什么支持?")
        assert "索引正在更新" in svc.coverage()["updating"]
    h = t.hints[0]
    assert h["kind"] == "indexing" and "dalian.txt" in h["text"] and "being updated" in h["text"]
    assert not any(x["kind"] == "indexing" for x in turn(svc, "大连市对首贷户有什么支持?").hints)


def test_vague_question_gets_an_overview_and_precise_questions(svc):
    t = turn(svc, "贷款")
    assert t.overview and not t.answer["abstained"]
    lines = t.answer["answer"].split("\n")
    cities = [c["city"] for c in t.citations]
    assert len(lines) == len(cities) >= 3 and len(set(cities)) == len(cities)  # one line per reply
    for c in t.citations:
        assert c["quote"] in c["text"] and "贷款" in c["quote"]
    assert len(t.suggestions) == 3 and all(s.endswith("?") for s in t.suggestions)


def test_did_you_mean_a_place(svc):
    t = turn(svc, "郑洲市对首次获评的专精特新企业奖励多少?")
    h = next(h for h in t.hints if h["kind"] == "didyoumean")
    assert "郑州" in h["text"] and h["question"] == "郑州市对首次获评的专精特新企业奖励多少?"


def test_followups_come_from_neighbouring_items(svc):
    t = turn(svc, "沈阳市累计增加首贷户多少户?")
    assert 1 <= len(t.suggestions) <= 2
    assert all(s.startswith("沈阳市") for s in t.suggestions), t.suggestions
    # each suggestion is about a sibling item of the cited passage's section
    gen = svc.generation()
    cited = next(ch for ch in gen.chunks if ch.chunk_id == t.citations[0]["chunk_id"])
    siblings = [ch.section_path[-1] for ch in gen.chunks if ch.doc_id == cited.doc_id and ch.section_path[:-1] == cited.section_path[:-1]]
    from rag.webapp.service import item_label

    assert all(any(item_label(s) in q for s in siblings) for q in t.suggestions)


def test_provider_not_installed_is_one_line(svc, monkeypatch):
    from rag.webapp import Turn, service

    monkeypatch.setattr(service, "provider_problem", lambda p: "回答方式 ollama 未安装 · run `make install-llm`" if p == "ollama" else "")
    with pytest.raises(service.ProviderMissing, match="make install-llm"):
        svc.answer_turn(Turn(question="营口市对博士每月补贴多少?"), [], [], 5, "ollama")


def test_remove_then_undo(bundled_index, tmp_path):
    from rag.webapp.service import ChatService

    s = ChatService(settings_for(copy_index(bundled_index, tmp_path / "index")))
    assert "added 1" in s.add_files([str(MORE / "006_linxiang.txt")])
    uploaded = s.generation().docs["006_linxiang"].path
    msg, undo = s.remove_with_undo(["006_linxiang", "tianjin"])
    assert "removed" in msg and {u["doc_id"] for u in undo} == {"006_linxiang", "tianjin"}
    ids = {r[0] for r in s.doc_rows()}
    assert "006_linxiang" not in ids and "tianjin" not in ids
    assert next(u for u in undo if u["doc_id"] == "006_linxiang")["trash"]  # the uploaded copy waits in the trash
    msg = s.undo_remove(undo)
    assert "restored" in msg, msg
    ids = {r[0] for r in s.doc_rows()}
    assert {"006_linxiang", "tianjin"} <= ids
    assert s.generation().docs["006_linxiang"].path == uploaded
    assert "2400万元" in turn(s, "临湘市助保贷风险基金增加到多少?").answer["answer"]
