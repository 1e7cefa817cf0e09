"""The Milvus backend (rag.milvus_store) on Milvus Lite: the same questions as the FAISS backend, filters on every
search path (dense, lexical, the engine's hybrid), the engine's jieba tokens against the project's, incremental
upsert/delete by document content hash, a writer that dies mid-batch, and the CLI with [index] backend = milvus."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from conftest import REPLIES, run_rag, settings_for  # noqa: E402
from rag.ingest import ingest  # noqa: E402
from rag.milvus_store import MilvusStore  # noqa: E402
from rag.retriever import Retriever  # noqa: E402
from rag.textproc import domain_terms, tokenize  # noqa: E402

ALL = ["liaoning", "shenyang", "tianjin", "yingkou", "zhengzhou"]
MILVUS = {"index.backend": "milvus"}


def copy_replies(dest: Path, names=ALL) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(REPLIES / f"{n}.txt", dest / f"{n}.txt")
    return dest


def rows_in_engine(store: MilvusStore) -> list[dict]:
    return store.client.query(store.chunks_name, filter="id >= 0", output_fields=["id", "doc_id", "doc_hash", "city", "year", "lex"], limit=16384)


@pytest.fixture(scope="module")
def mindex(tmp_path_factory):
    d = tmp_path_factory.mktemp("milvus") / "index"
    s = settings_for(d, **MILVUS)
    rep = ingest([REPLIES], s)
    assert sorted(rep.added) == ALL
    return s


@pytest.fixture(scope="module")
def mret(mindex):
    return Retriever(mindex)


@pytest.fixture(scope="module")
def fret(bundled_index):
    return Retriever(settings_for(bundled_index))


# ------------------------------------------------------------------ same answers as FAISS
QUESTIONS = [
    "营口市对博士每月补贴多少?",
    "哪些城市对首贷户给予贴息?",
    "How much monthly living allowance does Yingkou give to doctoral graduates?",
    "沈阳市首贷户有多少?",
    "郑州对首次认定的专精特新小巨人企业奖励多少?",
]


@pytest.mark.parametrize("q", QUESTIONS)
def test_same_top_passage_as_faiss(mret, fret, q):
    m, f = mret.search(q, k=5), fret.search(q, k=5)
    assert m.hits and f.hits
    assert m.hits[0].chunk.chunk_id == f.hits[0].chunk.chunk_id
    assert m.query.cities == f.query.cities
    assert {h.chunk.doc_id for h in m.hits} == {h.chunk.doc_id for h in f.hits}


def test_snapshot_counts_and_chunks(mret, fret):
    m, f = mret.generation(), fret.generation()
    assert m.backend == "milvus" and m.name.startswith("milvus-")
    assert len(m.chunks) == len(f.chunks) and set(m.docs) == set(f.docs)
    rows = m.rows_of("yingkou")
    assert [m.chunks[r].ordinal for r in rows] == sorted(m.chunks[r].ordinal for r in rows)
    assert [m.chunks[r].to_dict() for r in rows] == [f.chunks[r].to_dict() for r in f.rows_of("yingkou")]
    assert sorted(c.chunk_id for c in m.chunks) == sorted(c.chunk_id for c in f.chunks)
    df_m, df_f = m.document_frequencies(), f.document_frequencies()
    assert df_m == {t: n for t, n in df_f.items() if t != "\u2205"}


# ------------------------------------------------------------------ filters on every path
FILTERS = [
    ({"cities": ["沈阳市"]}, lambda c, m: c.city == "沈阳市"),
    ({"cities": ["营口市", "天津市"]}, lambda c, m: c.city in ("营口市", "天津市")),
    ({"years": ["2021"]}, lambda c, m: m.year == "2021"),
    ({"cities": ["沈阳市"], "years": ["2021"]}, lambda c, m: False),  # 沈阳's reply is not from 2021
    ({"doc_ids": ["zhengzhou"]}, lambda c, m: c.doc_id == "zhengzhou"),
]


@pytest.mark.parametrize("flt,ok", FILTERS, ids=["city", "two-cities", "year", "city+year", "doc"])
def test_filters_on_every_search_path(mret, flt, ok):
    snap = mret.generation()
    allowed = snap.filter_rows(**flt)
    q = "中小企业 首贷户 贴息 融资 补贴"
    qvec = np.asarray(mret.embedder.embed_array([q], is_query=True)[0])
    toks = tokenize(q)
    paths = {
        "dense": snap.search_dense(qvec, allowed, 200),
        "lexical": snap.search_lexical(toks, allowed, 200),
        "hybrid (engine)": snap.search_hybrid(qvec, toks, allowed, 200),
    }
    for name, hits in paths.items():
        for row, _ in hits:
            c = snap.chunks[row]
            assert ok(c, snap.docs[c.doc_id]), (name, flt, c.chunk_id)
    if flt != {"cities": ["沈阳市"], "years": ["2021"]}:
        assert paths["dense"] and paths["hybrid (engine)"], flt
    # the retriever's own hybrid search (two filtered searches fused in rag) respects them too
    res = mret.search(q, k=50, cities=flt.get("cities"), years=flt.get("years"))
    if "doc_ids" not in flt:
        assert all(ok(h.chunk, snap.docs[h.chunk.doc_id]) for h in res.hits)


def test_filter_given_to_hybrid_search_itself_is_not_applied_by_milvus_lite(mret):
    """What the README records: pymilvus's hybrid_search has no filter parameter of its own, and Milvus Lite
    ignores one given there (rows of every city come back). rag puts the filter into every AnnSearchRequest."""
    from pymilvus import AnnSearchRequest, RRFRanker

    snap = mret.generation()
    qvec = mret.embedder.embed_array(["首贷户 贴息"], is_query=True)[0].tolist()
    reqs = [
        AnnSearchRequest(data=[qvec], anns_field="dense", param={"metric_type": "IP"}, limit=50),
        AnnSearchRequest(data=["首贷户 贴息"], anns_field="sparse", param={"metric_type": "BM25"}, limit=50),
    ]
    res = snap.store.client.hybrid_search(snap.store.chunks_name, reqs=reqs, ranker=RRFRanker(60), limit=50, output_fields=["city"], filter='city == "沈阳市"')
    leaked = {h["entity"]["city"] for h in res[0]} - {"沈阳市"}
    ours = snap.search_hybrid(np.asarray(qvec), ["首贷户", "贴息"], snap.filter_rows(cities=["沈阳市"]), 50)
    assert ours and {snap.chunks[r].city for r, _ in ours} == {"沈阳市"}
    print(f"hybrid_search(filter=...) on Milvus Lite returned rows of {sorted(leaked)} outside the filter")


# ------------------------------------------------------------------ the engine's tokens against the project's
def test_engine_tokens_agree_with_the_projects(mindex):
    store = MilvusStore(mindex)
    rows = rows_in_engine(store)
    c = store.client
    # every token rag.textproc.tokenize makes of a passage is a BM25 term of that passage in the engine
    total, missed = 0, []
    for e in rows[::12]:
        for t in sorted(set(tokenize(e["lex"]))):
            total += 1
            got = c.search(store.chunks_name, data=[t], anns_field="sparse", limit=1, filter=f"id == {e['id']}", search_params={"metric_type": "BM25"})
            if not (got and got[0] and got[0][0]["distance"] != 0):
                missed.append(t)
    print(f"engine/project token agreement: {total - len(missed)}/{total}; not terms in the engine: {missed}")
    assert total > 500 and len(missed) <= 0.01 * total, missed
    assert not set(missed) & set(domain_terms())
    # the domain words stay whole: the engine finds a domain word exactly where the project's tokens have it
    # (or, in search mode, one of its sub-words: 首贷户 -> 首贷户, 首贷)
    for w in ["首贷户", "专精特新", "小巨人", "揭榜挂帅", "免申即享", "首贷"]:
        want = {e["id"] for e in rows if set(tokenize(w)) & set(tokenize(e["lex"]))}
        got = c.search(store.chunks_name, data=[w], anns_field="sparse", limit=1000, search_params={"metric_type": "BM25"})[0]
        assert {h["id"] for h in got} == want, w
    assert tokenize("首贷户") == ["首贷", "首贷户"] and "专精特新" in tokenize("专精特新企业")


# ------------------------------------------------------------------ incremental, by document content hash
def test_changed_file_replaces_only_its_rows_and_deletes_leave_nothing(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang", "tianjin"])
    s = settings_for(tmp_path / "index", **MILVUS)
    first = ingest([src], s)
    store = MilvusStore(s)
    before = {e["id"]: e for e in rows_in_engine(store)}
    r = Retriever(s)
    assert "2000元" in r.search("营口市对博士每月补贴多少?", k=3).hits[0].chunk.text

    again = ingest([src], s)  # unchanged: nothing written
    assert again.generation == first.generation and again.chunks_embedded == 0 and sorted(again.unchanged) == ["shenyang", "tianjin", "yingkou"]

    f = src / "yingkou.txt"
    f.write_text(f.read_text(encoding="utf-8").replace("每月分别享受2000元、1000元、800元的生活补贴", "每月分别享受2600元、1300元、900元的生活补贴"), encoding="utf-8")
    rep = ingest([src], s)
    assert rep.updated == ["yingkou"] and sorted(rep.unchanged) == ["shenyang", "tianjin"]
    after = {e["id"]: e for e in rows_in_engine(store)}
    # the other documents' rows are the same rows (not rewritten); yingkou's rows are all new, none left over
    assert {i for i, e in before.items() if e["doc_id"] != "yingkou"} == {i for i, e in after.items() if e["doc_id"] != "yingkou"}
    new_hash = {e["doc_hash"] for e in after.values() if e["doc_id"] == "yingkou"}
    assert len(new_hash) == 1 and new_hash != {e["doc_hash"] for e in before.values() if e["doc_id"] == "yingkou"}
    assert len(after) == rep.chunks_total
    hit = r.search("营口市对博士每月补贴多少?", k=3)
    assert hit.generation != first.generation and "2600元" in hit.hits[0].chunk.text
    assert not any("2000元、1000元" in h.chunk.text for h in r.search("博士研究生 每月 生活补贴 2000元", k=10, mode="bm25").hits)

    (src / "tianjin.txt").unlink()  # a file deleted from a re-ingested directory
    rep = ingest([src], s)
    assert rep.removed == ["tianjin"]
    assert {e["doc_id"] for e in rows_in_engine(store)} == {"yingkou", "shenyang"}
    assert "tianjin" not in r.generation().docs and r.search("中小企业 融资", k=5, years=["2021"]).hits == []

    from rag.ingest import remove_documents

    remove_documents(["shenyang"], s)
    assert {e["doc_id"] for e in rows_in_engine(store)} == {"yingkou"}
    assert set(r.generation().docs) == {"yingkou"}


def test_writer_dying_mid_batch_leaves_each_document_old_or_new(tmp_path, monkeypatch):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang"])
    s = settings_for(tmp_path / "index", **MILVUS)
    ingest([src], s)
    r = Retriever(s)
    old_rows = {e["id"] for e in rows_in_engine(MilvusStore(s))}
    f = src / "yingkou.txt"
    f.write_text(f.read_text(encoding="utf-8").replace("2000元、1000元、800元", "2700元、1300元、900元"), encoding="utf-8")

    import rag.milvus_store as ms

    real_upsert = ms.MilvusStore._doc_row

    def die(*a, **kw):  # after the new passages are inserted, before the documents' commit
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(ms.MilvusStore, "_doc_row", staticmethod(die))
    with pytest.raises(KeyboardInterrupt):
        ingest([src], s)
    monkeypatch.setattr(ms.MilvusStore, "_doc_row", staticmethod(real_upsert))
    rows = rows_in_engine(MilvusStore(s))
    assert len(rows) > len(old_rows)  # the new version's passages are there, not committed
    for q in ("营口市对博士每月补贴多少?", "博士研究生 每月 生活补贴"):  # readers see the old version only
        hits = r.search(q, k=10).hits
        assert hits and any("2000元、1000元" in h.chunk.text for h in hits) and not any("2700元" in h.chunk.text for h in hits)
        assert len({h.chunk.chunk_id for h in hits}) == len(hits)
    rep = ingest([src], s)  # the next writer cleans up and commits
    assert rep.updated == ["yingkou"]
    rows = rows_in_engine(MilvusStore(s))
    assert len(rows) == rep.chunks_total and len({(e["doc_id"], e["doc_hash"]) for e in rows}) == 2
    assert "2700元" in r.search("营口市对博士每月补贴多少?", k=3).hits[0].chunk.text


def reader_view(s) -> dict:
    """What a fresh reader sees: each document's hash and the hashes of the passages a search finds for it."""
    store = MilvusStore(s)
    snap = store.load()
    found: dict[str, set] = {}
    for d in snap.docs:
        rows = snap.rows_of(d)
        assert len(rows) == snap.chunk_counts[d], d  # every passage of the committed version is there
        found[d] = {snap.hashes[d]}
    for h in Retriever(s).search("中小企业 融资 贴息 人才", k=30).hits:
        assert snap.hashes[h.chunk.doc_id]  # no passage of a document the snapshot does not have
    return {"docs": dict(snap.hashes), "name": snap.name}


MILVUS_STEPS = ["milvus:pending", "milvus:passages", "milvus:documents", "milvus:committed", "milvus:cleaned"]


@pytest.mark.parametrize("step", MILVUS_STEPS)
def test_a_batch_of_documents_commits_as_one(tmp_path, monkeypatch, step):
    """Two updates, an addition and a removal in one batch (and a second batch): a failure at any point of a
    batch leaves readers the whole batch before or the whole batch after, never a mix; nothing is lost."""
    import rag.milvus_store as ms

    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang", "tianjin", "liaoning"])
    s = settings_for(tmp_path / "index", **MILVUS, **{"index.batch_docs": 4})
    ingest([src], s)
    old = reader_view(s)
    for name in ("yingkou", "shenyang"):
        f = src / f"{name}.txt"
        f.write_text(f.read_text(encoding="utf-8") + f"\n附:核对编号{step}{name},以上内容继续执行。\n", encoding="utf-8")
    copy_replies(src, ["zhengzhou"])
    (src / "liaoning.txt").unlink()
    seen = []

    def fail(name):
        seen.append(name)
        if name == step:
            raise KeyboardInterrupt(name)  # as a kill: no clean-up runs

    monkeypatch.setattr(ms, "_step", fail)
    with pytest.raises(KeyboardInterrupt):
        ingest([src], s)
    monkeypatch.setattr(ms, "_step", lambda name: None)
    after_fail = reader_view(s)
    rep = ingest([src], s)  # the next writer recovers and completes
    new = reader_view(s)
    assert set(new["docs"]) == {"yingkou", "shenyang", "tianjin", "zhengzhou"}
    assert new["docs"]["tianjin"] == old["docs"]["tianjin"] and new["docs"]["yingkou"] != old["docs"]["yingkou"]
    committed = MILVUS_STEPS.index(step) >= MILVUS_STEPS.index("milvus:committed")
    assert after_fail["docs"] == (new["docs"] if committed else old["docs"])  # all of the batch, or none of it
    if committed:
        assert not (rep.added or rep.updated or rep.removed)  # nothing left to do
    else:
        assert sorted(rep.updated) == ["shenyang", "yingkou"] and rep.added == ["zhengzhou"] and rep.removed == ["liaoning"]
    store = MilvusStore(s)
    rows = rows_in_engine(store)
    assert {(e["doc_id"], e["doc_hash"]) for e in rows} == set(new["docs"].items())  # no leftover passages
    assert len(rows) == rep.chunks_total
    docs_rows = store.client.query(store.docs_name, filter='doc_id != ""', output_fields=["doc_id", "batch"], limit=1000)
    assert sorted(e["doc_id"] for e in docs_rows) == sorted(new["docs"])  # one row per document left


def test_batches_commit_one_by_one(tmp_path, monkeypatch):
    """With batch_docs = 2, a failure in the second batch leaves the first batch committed, the second not."""
    import rag.milvus_store as ms

    src = copy_replies(tmp_path / "src", ["yingkou"])
    s = settings_for(tmp_path / "index", **MILVUS, **{"index.batch_docs": 2})
    ingest([src], s)
    copy_replies(src, ["shenyang", "tianjin", "liaoning", "zhengzhou"])
    count = {"n": 0}

    def fail(name):
        if name == "milvus:documents":
            count["n"] += 1
            if count["n"] == 2:
                raise KeyboardInterrupt(name)

    monkeypatch.setattr(ms, "_step", fail)
    with pytest.raises(KeyboardInterrupt):
        ingest([src], s)
    monkeypatch.setattr(ms, "_step", lambda name: None)
    assert set(reader_view(s)["docs"]) == {"yingkou", "liaoning", "shenyang"}  # the first batch (sorted ids), whole
    ingest([src], s)
    assert set(reader_view(s)["docs"]) == {"yingkou", "liaoning", "shenyang", "tianjin", "zhengzhou"}


# ------------------------------------------------------------------ configuration and CLI
def test_unknown_backend_and_unreachable_server_are_clear_errors(tmp_path):
    p = run_rag("ask", "营口市对博士每月补贴多少?", "--index", tmp_path / "i", env={"RAG_INDEX_BACKEND": "elastic"})
    assert p.returncode == 1 and "unknown index backend 'elastic'" in p.stderr and "Traceback" not in p.stderr
    p = run_rag("ask", "营口市对博士每月补贴多少?", "--index", tmp_path / "i", env={"RAG_INDEX_BACKEND": "milvus", "RAG_MILVUS_URI": "http://127.0.0.1:9"}, timeout=120)
    assert p.returncode == 1 and "Milvus" in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.slow
def test_cli_ingest_ask_docs_with_milvus(tmp_path):
    env = {"RAG_INDEX_BACKEND": "milvus", "COLUMNS": "1000"}
    idx = tmp_path / "index"
    p = run_rag("ingest", REPLIES, "--index", idx, "--json", env=env)
    assert p.returncode == 0, p.stderr
    assert sorted(json.loads(p.stdout)["added"]) == ALL
    assert (idx / "milvus.db").exists()
    p = run_rag("ask", "营口市对博士每月补贴多少?", "--index", idx, "--json", env=env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert "2000元" in out["answer"] and out["citations"][0]["doc_id"] == "yingkou"
    p = run_rag("ask", "哪些城市对首贷户给予贴息?", "--index", idx, "--json", env=env)
    assert {"shenyang", "yingkou"} <= {c["doc_id"] for c in json.loads(p.stdout)["citations"]}
    p = run_rag("docs", "--index", idx, "--json", env=env)
    assert sorted(r["id"] for r in json.loads(p.stdout)) == ALL
