"""Stage 5 (rag.retriever): hybrid search from Python, filters, and the LangChain BaseRetriever."""
from __future__ import annotations

import pytest

from conftest import settings_for
from rag.retriever import Retriever
from rag.types import Hit


@pytest.fixture(scope="module")
def retriever(bundled_index):
    return Retriever(settings_for(bundled_index))


def test_search_returns_ranked_hits(retriever):
    res = retriever.search("营口市对博士每月补贴多少?", k=4)
    assert 1 <= len(res.hits) <= 4
    assert all(isinstance(h, Hit) for h in res.hits)
    assert [h.rank for h in res.hits] == list(range(1, len(res.hits) + 1))
    scores = [h.score for h in res.hits]
    assert scores == sorted(scores, reverse=True)
    top = res.hits[0]
    assert top.chunk.doc_id == "yingkou" and "2000元" in top.chunk.text
    assert top.sources and set(top.sources) <= {"dense", "bm25"}
    assert 0 < top.dense <= 1.0001 and 0 <= top.coverage <= 1
    assert res.query.cities == ["营口市"]
    assert res.generation == retriever.generation().name
    assert res.timings_ms["total"] >= 0


def test_k_is_respected(retriever):
    for k in (1, 3, 8):
        assert len(retriever.search("中小企业融资", k=k).hits) == k


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_the_passage(retriever, mode):
    hits = retriever.search("博士研究生 每月 生活补贴", k=5, mode=mode).hits
    assert any("2000元" in h.chunk.text for h in hits), mode
    want = {"dense": {"dense"}, "bm25": {"bm25"}, "hybrid": {"dense", "bm25"}}[mode]
    assert set().union(*(h.sources for h in hits)) <= want


@pytest.mark.slow
def test_city_filter_short_and_full_names(retriever):
    q = "如何拓宽企业直接融资渠道?"
    a = retriever.search(q, k=5, cities=["沈阳"])
    b = retriever.search(q, k=5, cities=["沈阳市"])
    assert a.hits and {h.chunk.city for h in a.hits} == {"沈阳市"}
    assert [h.chunk.chunk_id for h in a.hits] == [h.chunk.chunk_id for h in b.hits]
    c = retriever.search(q, k=5, cities=["辽宁"])
    d = retriever.search(q, k=5, cities=["辽宁省"])
    assert c.query.cities == d.query.cities == ["辽宁省"]
    assert [h.chunk.chunk_id for h in c.hits] == [h.chunk.chunk_id for h in d.hits]
    assert c.hits and {h.chunk.doc_id for h in c.hits} == {"liaoning"}


def test_year_filter(retriever):
    hits = retriever.search("中小企业 融资", k=5, years=["2021"]).hits
    assert hits and {h.chunk.doc_id for h in hits} == {"tianjin"}
    assert retriever.search("中小企业 融资", k=5, years=["1999"]).hits == []


def test_place_named_in_the_question_filters(retriever):
    res = retriever.search("沈阳市首贷户有多少?", k=5)
    assert res.query.cities == ["沈阳市"]
    assert {h.chunk.city for h in res.hits} == {"沈阳市"}


def test_unknown_place_returns_nothing(retriever):
    res = retriever.search("广州市对博士有什么补贴?", k=5)
    assert res.query.unknown_places == ["广州市"]
    assert res.hits == []


def test_query_analysis(retriever):
    q = retriever.analyze("How much monthly living allowance does Yingkou give to doctoral graduates?")
    assert q.expansion  # Chinese glossary terms for an English question
    assert q.terms
    assert retriever.analyze("哪些城市对首贷户给予贴息?").comparative
    assert not retriever.analyze("营口市对博士每月补贴多少?").comparative
    assert sorted(retriever.cities()) == sorted(["天津市", "沈阳市", "营口市", "辽宁省", "郑州市"])


def test_comparative_search_spans_documents(retriever):
    res = retriever.search("哪些城市对首贷户给予贴息?", k=5)
    docs = {h.chunk.doc_id for h in res.hits}
    assert "shenyang" in docs


@pytest.mark.parametrize("ranking", ["learned", "coverage"])
def test_comparative_search_puts_each_citys_own_passage_first_with_either_ranking(bundled_index, ranking):
    r = Retriever(settings_for(bundled_index).with_overrides(**{"retrieval.ranking": ranking}))
    hits = r.search("哪些城市对首贷户给予贴息?", k=5).hits
    first = {}
    for h in hits:
        first.setdefault(h.chunk.doc_id, h.chunk.text)
    assert "首贷" in first.get("yingkou", ""), first  # the learned ranking once put 营口's other passages first
    assert "首贷" in first["shenyang"]


def test_english_question(retriever):
    hits = retriever.search("How much monthly living allowance does Yingkou give to doctoral graduates?", k=3).hits
    assert hits[0].chunk.doc_id == "yingkou" and "2000元" in hits[0].chunk.text


# ------------------------------------------------------------------ LangChain
def test_langchain_retriever(retriever):
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    lc = retriever.as_langchain(k=3)
    assert isinstance(lc, BaseRetriever)
    docs = lc.invoke("营口市对博士每月补贴多少?")
    assert 1 <= len(docs) <= 3
    assert all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert "2000元" in top.page_content
    md = top.metadata
    assert {"chunk_id", "doc_id", "city", "title", "issuer", "date", "section", "score", "rank"} <= set(md)
    assert (md["doc_id"], md["city"], md["rank"]) == ("yingkou", "营口市", 1)
    assert md["title"] == "关于促进我市中小企业创新发展的建议提案"
    assert md["chunk_id"].startswith("yingkou#")
    assert "5.引导企业全面提升竞争力" in md["section"]
    # the same passages as the Python API
    direct = retriever.search("营口市对博士每月补贴多少?", k=3).hits
    assert [d.metadata["chunk_id"] for d in docs] == [h.chunk.chunk_id for h in direct]


def test_langchain_retriever_filters_and_batch(retriever):
    lc = retriever.as_langchain(k=2)
    docs = lc.invoke("如何拓宽企业直接融资渠道?", cities=["沈阳"])
    assert docs and {d.metadata["city"] for d in docs} == {"沈阳市"}
    batch = lc.batch(["营口市对博士每月补贴多少?", "天津市优化营商环境"])
    assert len(batch) == 2 and all(batch)
    assert batch[1][0].metadata["city"] == "天津市"


def test_langchain_retriever_in_a_chain(retriever):
    from langchain_core.runnables import RunnableLambda

    chain = retriever.as_langchain(k=2) | RunnableLambda(lambda docs: [d.metadata["doc_id"] for d in docs])
    assert chain.invoke("营口市对博士每月补贴多少?")[0] == "yingkou"


def test_missing_is_the_most_specific_absent_term(retriever):
    plan = retriever.analyze("沈阳设立的天使投资基金总规模有多大?")
    part = plan.parts[0]
    assert "天使" in part.terms and "规模" in part.terms
    assert retriever.missing(part, "|".join(part.terms)) == 0.0
    weights = {t: w for t, (w, _) in zip(part.terms, retriever.weighted_terms(part, ""))}
    top = max(weights.values())
    for term, w in weights.items():  # lacking one term costs that term's share of the weightiest
        rest = "|".join(t for t in part.terms if term not in t)
        assert retriever.missing(part, rest) >= w / top - 1e-9
    without_angel = retriever.missing(part, "设立沈阳市成果转化投资基金,总规模4亿元。")
    assert without_angel >= weights["天使"] / top - 1e-9 > 0


def test_term_weights_are_computed_once_per_generation(retriever, monkeypatch):
    """coverage() weighs every key term of every candidate passage: a term's weight (its equivalents' idf, a
    phrase's pieces, which needs jieba) is computed once per index generation, then read from a cache."""
    calls = []
    real = Retriever._term_weight
    monkeypatch.setattr(Retriever, "_term_weight", lambda self, t, a: calls.append(t) or real(self, t, a))
    retriever._idf_gen = None  # a fresh generation's caches
    q = retriever.analyze("营收和营业收入方面,获得贷款的首贷户有多少?")
    assert q.alts, "the question has terms with equivalents"
    first = [retriever.coverage(q, "首贷户获得贷款,营业收入增长。") for _ in range(3)]
    n = len(calls)
    assert n >= 1 and len(set(calls)) == n and len(set(first)) == 1
    retriever.coverage(q, "另一段文字,营业收入。")
    assert len(calls) == n  # the same terms: no new computation
    retriever._idf_gen = None  # another generation: weights computed again (document frequencies changed)
    retriever.coverage(q, "另一段文字,营业收入。")
    assert len(calls) == 2 * n


# ------------------------------------------------------------------ comparative anchors, on made-up replies
_REPLIES = {
    "alpha": "city: 甲市\n\n关于缓解企业融资难的答复\n一、融资服务\n成立续贷服务中心,为到期企业办理无还本续贷,累计续贷12亿元。\n",
    "beta": "city: 乙市\n\n关于缓解企业融资难的答复\n一、融资服务\n将中小微企业转贷应急周转资金规模扩大到20亿元,帮助企业按期还贷。\n",
    "gamma": "city: 丙市\n\n关于人才引进的答复\n一、人才政策\n对新引进的博士每月给予生活补贴2000元。\n",
}


@pytest.fixture(scope="module")
def anchor_retriever(tmp_path_factory):
    from rag.ingest import ingest

    root = tmp_path_factory.mktemp("anchors")
    (root / "replies").mkdir()
    for name, text in _REPLIES.items():
        (root / "replies" / f"{name}.txt").write_text(text, encoding="utf-8")
    ingest([root / "replies"], settings_for(root / "index"))
    return Retriever(settings_for(root / "index"))


def test_comparative_anchor_is_a_field_name_or_a_rarest_word(anchor_retriever):
    """续贷 is one of the field's names, 转贷 and 应急 are the question's rarest words: a reply saying either is
    relevant (the field's name alone used to be the only anchor, and 乙市's 转贷应急周转资金 was left out)."""
    hits = anchor_retriever.search("哪些地方设立了帮企业续贷周转的转贷或应急周转资金?", k=5).hits
    docs = {h.chunk.doc_id for h in hits}
    assert {"alpha", "beta"} <= docs and "gamma" not in docs, docs
