"""The faiss backend's segments (rag.index): an ingest writes only what changed, removals are tombstones, merges
fold segments; searches equal a from-scratch build of the same documents; a failure between any two writes
leaves the previous generation intact. Real files, the real embedder (cached), real bm25s as the reference."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

import rag.index as ri
from conftest import REPLIES, run_rag, settings_for
from rag.index import IncompatibleIndex, IndexStore, build_bm25, compaction_plan
from rag.ingest import compact_index, ingest
from rag.retriever import Retriever
from rag.textproc import tokenize

WIDE = {"COLUMNS": "1000"}
NO_MERGE = {"index.max_segments": 100, "index.max_dead_fraction": 0.99}  # merges only when a test asks
QUESTIONS = ["营口市对博士每月补贴多少?", "首贷户贴息", "沈阳市累计增加首贷户多少户?", "专精特新 小巨人 奖励", "融资担保 中小企业", "What subsidies for doctoral talent?"]
FILTERS = [None, {"cities": ["营口市"]}, {"cities": ["沈阳市", "天津市"]}, {"years": ["2023"]}]


def copy_replies(dest: Path, names) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(REPLIES / f"{n}.txt", dest / f"{n}.txt")
    return dest


def edit(path: Path) -> str:
    """Change one sentence to a text no earlier run has seen (so one passage must be embedded)."""
    tag = f"{random.randrange(10**8, 10**9)}"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"\n附:本答复核对编号{tag},相关政策继续执行。\n")
    return tag


_EMBEDDER = []


_QVECS: dict[str, np.ndarray] = {}


def _embedder(index: Path):
    if not _EMBEDDER:
        from rag.embedder import make_embedder

        _EMBEDDER.append(make_embedder(settings_for(index).embedder))
    return _EMBEDDER[0]


def snapshot_view(index: Path, retriever: bool = True):
    """Everything a reader can see: passages in row order, documents, df, and the raw searches of each path
    (dense and BM25, with and without filters), and (retriever=True) the whole Retriever.search."""
    gen = IndexStore(index).load()
    emb = _embedder(index)
    out = {"chunks": [c.to_dict() for c in gen.chunks], "docs": {k: v.to_dict() for k, v in gen.docs.items()},
           "df": gen.document_frequencies(), "searches": []}
    r = Retriever(settings_for(index), embedder=emb) if retriever else None
    for q in QUESTIONS:
        if q not in _QVECS:
            _QVECS[q] = emb.embed_array([q], is_query=True)[0]
        qvec, toks = _QVECS[q], tokenize(q)
        for f in FILTERS:
            allowed = gen.filter_rows(**f) if f else None
            out["searches"].append(("dense", q, str(f), gen.search_dense(qvec, allowed, 20)))
            out["searches"].append(("lexical", q, str(f), gen.search_lexical(toks, allowed, 20)))
        if r is not None:
            hits = r.search(q, k=10).hits
            out["searches"].append(("retriever", q, "", [(h.chunk.chunk_id, h.score) for h in hits]))
    return out


def assert_same_view(a, b):
    assert a["chunks"] == b["chunks"]
    assert a["docs"] == b["docs"]
    assert a["df"] == b["df"]
    assert len(a["searches"]) == len(b["searches"])
    for (ka, qa, fa, ra), (kb, qb, fb, rb) in zip(a["searches"], b["searches"]):
        assert (ka, qa, fa) == (kb, qb, fb)
        assert [x for x, _ in ra] == [x for x, _ in rb], (ka, qa, fa)
        assert np.allclose([s for _, s in ra], [s for _, s in rb], rtol=1e-5, atol=1e-6), (ka, qa, fa)


def rebuilt(tmp: Path, src: Path) -> Path:
    """A from-scratch index of the files of src."""
    d = tmp / f"scratch-{random.randrange(10**9)}"
    ingest([src], settings_for(d))
    return d


def segment_names(index: Path) -> list[str]:
    return [e["name"] for e in IndexStore(index).read_manifest()["segments"]]


# ------------------------------------------------------------------ writes only what changed
def test_update_add_remove_write_only_the_changes_and_search_as_a_rebuild(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang", "tianjin"])
    index = tmp_path / "index"
    s = settings_for(index, **NO_MERGE)
    first = ingest([src], s)
    assert first.segment == "seg-000001" and first.chunks_written == first.chunks_total
    base = IndexStore(index).load()
    n_yingkou = sum(c.doc_id == "yingkou" for c in base.chunks)

    seg1_files = {f.name: f.stat().st_mtime_ns for f in (index / "segments" / "seg-000001").iterdir()}
    copy_replies(src, ["zhengzhou"])
    edit(src / "yingkou.txt")
    rep = ingest([src], s)
    assert rep.added == ["zhengzhou"] and rep.updated == ["yingkou"] and sorted(rep.unchanged) == ["shenyang", "tianjin"]
    gen = IndexStore(index).load()
    n_new = sum(c.doc_id in ("yingkou", "zhengzhou") for c in gen.chunks)
    assert rep.chunks_written == n_new  # only the added and the changed documents' passages were written
    assert rep.chunks_embedded < rep.chunks_written  # the edited passages (the rest came from the cache)
    assert rep.tombstoned == n_yingkou
    assert segment_names(index) == ["seg-000001", "seg-000002"]
    seg1 = IndexStore(index).read_manifest()["segments"][0]
    assert seg1["dead_docs"] == ["yingkou"] and seg1["dead_rows"] == n_yingkou
    # the first segment was not rewritten
    assert {f.name: f.stat().st_mtime_ns for f in (index / "segments" / "seg-000001").iterdir()} == seg1_files
    assert_same_view(snapshot_view(index), snapshot_view(rebuilt(tmp_path, src)))

    (src / "tianjin.txt").unlink()
    rep = ingest([src], s)
    assert rep.removed == ["tianjin"] and rep.segment == "" and rep.chunks_written == 0 and rep.tombstoned > 0
    assert segment_names(index) == ["seg-000001", "seg-000002"]  # a removal writes no segment
    assert_same_view(snapshot_view(index), snapshot_view(rebuilt(tmp_path, src)))

    before = snapshot_view(index)
    done = compact_index(s)
    assert done.merged == ["seg-000001", "seg-000002"] and done.merge_dropped_rows > 0
    assert len(segment_names(index)) == 1 and IndexStore(index).read_manifest()["segments"][0]["dead_rows"] == 0
    assert_same_view(snapshot_view(index), before)
    assert compact_index(s).merged == []  # nothing left to merge


def test_segment_bm25_scores_equal_bm25s_over_the_same_passages(tmp_path):
    """Scored across segments with the generation's statistics, BM25 equals one bm25s index of the live passages."""
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang", "liaoning"])
    index = tmp_path / "index"
    s = settings_for(index, **NO_MERGE)
    ingest([src], s)
    copy_replies(src, ["zhengzhou", "tianjin"])
    edit(src / "shenyang.txt")
    ingest([src], s)
    ingest([], s, remove_ids=["liaoning"])
    gen = IndexStore(index).load()
    assert len(gen.segments) == 2 and gen.manifest["segments"][0]["dead_rows"] > 0
    ref = build_bm25([tokenize(c.context_text()) for c in gen.chunks])
    vocab = ref.vocab_dict
    counts = np.diff(np.asarray(ref.scores["indptr"]))
    assert gen.document_frequencies() == {t: int(counts[i]) for t, i in vocab.items() if i < len(counts)}
    for q in QUESTIONS + ["首贷户 首贷户 贴息", "不存在的词汇组合"]:
        toks = tokenize(q)
        mine = gen.bm25_scores(toks)
        theirs = ref.get_scores(toks) if any(t in vocab for t in toks) else np.zeros(len(gen.chunks))
        assert np.allclose(mine, theirs, rtol=1e-6, atol=1e-7), q
        assert np.array_equal(np.argsort(-mine, kind="stable")[:10], np.argsort(-np.asarray(theirs, np.float32), kind="stable")[:10]), q


# ------------------------------------------------------------------ merges
def test_merge_when_there_are_too_many_segments_or_too_many_tombstones(tmp_path):
    names = ["yingkou", "shenyang", "tianjin", "zhengzhou"]
    src = tmp_path / "src"
    index = tmp_path / "index"
    s = settings_for(index, **{"index.max_segments": 2, "index.max_dead_fraction": 0.5})
    for i, n in enumerate(names[:3]):
        copy_replies(src, [n])
        before = IndexStore(index).read_manifest() if i else None
        rep = ingest([src], s)
        if i < 2:
            assert rep.merged == []
        else:  # the third segment: all but the largest are merged
            live = {e["name"]: e["rows"] - e["dead_rows"] for e in before["segments"]}
            live[rep.segment] = rep.chunks_written
            assert sorted(rep.merged) == sorted(set(live) - {max(live, key=live.get)})
    assert len(segment_names(index)) == 2
    assert_same_view(snapshot_view(index), snapshot_view(rebuilt(tmp_path, src)))
    # replacing most of a segment passes max_dead_fraction: that segment is rewritten without its dead rows
    m = IndexStore(index).read_manifest()
    pair = next(e["name"] for e in m["segments"] if sum(v["segment"] == e["name"] for v in m["documents"].values()) == 2)
    doc = max((d for d, v in m["documents"].items() if v["segment"] == pair), key=lambda d: m["documents"][d]["chunks"])
    edit(src / f"{doc}.txt")
    rep = ingest([src], s)
    assert pair in rep.merged
    m = IndexStore(index).read_manifest()
    assert all(e["dead_rows"] / e["rows"] <= 0.5 for e in m["segments"]) and len(m["segments"]) <= 2
    assert_same_view(snapshot_view(index), snapshot_view(rebuilt(tmp_path, src)))


def _wait_for(pid: int, timeout: float = 300) -> int:
    import os
    import time

    end = time.time() + timeout
    while time.time() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.2)
    raise AssertionError(f"background merge {pid} still running after {timeout} s")


def test_a_background_merge_runs_after_the_ingest_returns_and_searches_as_a_rebuild(tmp_path):
    src = tmp_path / "src"
    index = tmp_path / "index"
    s = settings_for(index, **{"index.max_segments": 2, "index.max_dead_fraction": 0.99, "index.merge": "background"})
    for n in ["yingkou", "shenyang", "tianjin"]:
        copy_replies(src, [n])
        rep = ingest([src], s)
    # the third ingest published its segment and left the merge to a detached `rag compact --segments …`
    assert rep.merged == [] and len(rep.merge_pending) == 2 and rep.merge_pid > 0
    assert any("in the background" in n for n in rep.notes)
    assert _wait_for(rep.merge_pid) == 0
    log = (index / "merge.log").read_text(encoding="utf-8")
    assert json.loads(log[log.index("{"):])["merged"] == rep.merge_pending
    assert len(segment_names(index)) == 2
    assert_same_view(snapshot_view(index), snapshot_view(rebuilt(tmp_path, src)))


def test_ingests_during_a_merge_are_kept_and_a_stale_merge_publishes_nothing(tmp_path):
    """A merge built without the lock is published against the generation current then: documents replaced or
    removed meanwhile are tombstoned in the merged segment, documents added meanwhile stay in their segment."""
    from rag.ingest import lock_for

    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang"])
    index = tmp_path / "index"
    s = settings_for(index, **NO_MERGE)
    ingest([src], s)
    copy_replies(src, ["tianjin"])
    ingest([src], s)
    store = IndexStore(index)
    work = store.prepare_merge(None)  # both segments, built while the ingests below run
    other = IndexStore(index).prepare_merge(None)
    assert work.tmp.is_dir() and sorted(work.moved) == ["shenyang", "tianjin", "yingkou"]
    edit(src / "yingkou.txt")  # replaced while the merge is built
    (src / "tianjin.txt").unlink()  # removed
    copy_replies(src, ["zhengzhou"])  # added
    ingest([src], s)
    with lock_for(index):
        done = store.finish_merge(work)
    assert done["merged"] == ["seg-000001"]  # seg-000002 (only tianjin) went with the removal
    merged = next(e for e in store.read_manifest()["segments"] if e["name"] == done["segment"])
    assert merged["dead_docs"] == ["tianjin", "yingkou"]
    assert_same_view(snapshot_view(index), snapshot_view(rebuilt(tmp_path, src)))
    with lock_for(index):  # the second merge of the same segments: they are gone, nothing is published
        assert store.finish_merge(other) is None
    assert not other.tmp.exists()
    assert_same_view(snapshot_view(index), snapshot_view(rebuilt(tmp_path, src)))


def test_rag_compact_auto_and_segments(tmp_path):
    src = tmp_path / "src"
    index = tmp_path / "index"
    env = {"RAG_INDEX_MERGE": "off"}
    for n in ["yingkou", "shenyang"]:
        copy_replies(src, [n])
        assert run_rag("ingest", src, "--index", index, env=env).returncode == 0
    out = run_rag("compact", "--auto", "--index", index, "--json", env=env)  # 2 segments, no tombstones: nothing due
    assert out.returncode == 0 and json.loads(out.stdout)["merged"] == []
    out = run_rag("compact", "--segments", "seg-000001,seg-000002", "--index", index, "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["merged"] == ["seg-000001", "seg-000002"] and len(segment_names(index)) == 1


def test_compaction_plan():
    seg = lambda name, rows, dead=0: {"name": name, "rows": rows, "dead_rows": dead}  # noqa: E731
    m = {"segments": [seg("a", 1000), seg("b", 10), seg("c", 10)]}
    assert compaction_plan(m, 8, 0.25) == []
    assert compaction_plan(m, 2, 0.25) == ["b", "c"]  # the largest stays
    assert compaction_plan({"segments": [seg("a", 1000, 300), seg("b", 10)]}, 8, 0.25) == ["a"]  # purge a alone
    assert compaction_plan({"segments": [seg("a", 1000, 200)]}, 8, 0.25) == []


# ------------------------------------------------------------------ crash safety
STEPS = ["segment:chunks", "segment:vectors", "segment:faiss", "segment:bm25", "segment:written", "segment:renamed",
         "generation:docs", "generation:written", "generation:renamed", "current:written"]


class Injected(RuntimeError):
    pass


def test_a_failure_between_any_two_writes_leaves_the_previous_generation(tmp_path, monkeypatch):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang", "tianjin"])
    base = tmp_path / "base"
    ingest([src], settings_for(base))
    copy_replies(src, ["zhengzhou"])
    edit(src / "yingkou.txt")
    (src / "tianjin.txt").unlink()
    old = snapshot_view(base, retriever=False)
    expected = snapshot_view(rebuilt(tmp_path, src), retriever=False)
    seen = []

    for step in STEPS + ["merge:" + x for x in STEPS]:
        work = tmp_path / f"w-{step.replace(':', '_')}"
        shutil.copytree(base, work)
        s = settings_for(work, **NO_MERGE)
        merging = step.startswith("merge:")
        if merging:  # the ingest completes; the merge after it fails
            ingest([src], s)
            old_here = snapshot_view(work, retriever=False)
        target = step.split(":", 1)[1] if merging else step

        def fail(name, target=target):
            seen.append(name)
            if name == target:
                raise Injected(name)

        monkeypatch.setattr(ri, "_step", fail)
        with pytest.raises(Injected):
            compact_index(s) if merging else ingest([src], s)
        monkeypatch.setattr(ri, "_step", lambda name: None)
        assert_same_view(snapshot_view(work, retriever=False), old_here if merging else old)  # the previous generation, intact
        # the next run completes and leaves nothing of the failed one behind
        compact_index(s) if merging else ingest([src], s)
        assert_same_view(snapshot_view(work, retriever=False), expected)
        m = IndexStore(work).read_manifest()
        used = {e["name"] for g in work.glob("gen-*") for e in json.loads((g / "manifest.json").read_text())["segments"]}
        assert {p.name for p in (work / "segments").iterdir()} <= used
        assert set(e["name"] for e in m["segments"]) <= used
    assert set(STEPS) <= set(seen)


def test_failure_after_publishing_keeps_the_new_generation(tmp_path, monkeypatch):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang"])
    index = tmp_path / "index"
    s = settings_for(index)
    ingest([src], s)
    copy_replies(src, ["tianjin"])

    def fail(name):
        if name == "current:replaced":
            raise Injected(name)

    monkeypatch.setattr(ri, "_step", fail)
    with pytest.raises(Injected):
        ingest([src], s)
    monkeypatch.setattr(ri, "_step", lambda name: None)
    assert_same_view(snapshot_view(index), snapshot_view(rebuilt(tmp_path, src)))


def test_bad_files_and_a_failing_embedder_lose_nothing(tmp_path, monkeypatch):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang"])
    index = tmp_path / "index"
    s = settings_for(index)
    ingest([src], s)
    old = snapshot_view(index)
    (src / "broken.docx").write_bytes(b"not a zip")
    (src / "empty.txt").write_bytes(b"")
    rep = ingest([src], s)
    assert len(rep.skipped) == 2 and not rep.changed
    assert_same_view(snapshot_view(index), old)
    import rag.ingest as ing

    def boom(*a, **k):
        raise RuntimeError("embedder died")

    monkeypatch.setattr(ing._Embed, "__call__", boom)
    copy_replies(src, ["tianjin"])
    with pytest.raises(RuntimeError, match="embedder died"):
        ingest([src], s)
    assert_same_view(snapshot_view(index), old)


# ------------------------------------------------------------------ readers, formats, the CLI
def test_a_reader_reuses_the_segments_it_has_loaded(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang"])
    index = tmp_path / "index"
    s = settings_for(index)
    ingest([src], s)
    r = Retriever(s)
    g1 = r.generation()
    copy_replies(src, ["tianjin"])
    ingest([src], s)
    g2 = r.generation()
    assert g2.name != g1.name and g2.segments[0] is g1.segments[0]  # only the new segment was read
    assert "tianjin" in g2.docs and r.search("天津", k=3, cities=["天津市"]).hits


def test_an_index_of_the_older_format_is_converted_by_the_next_ingest(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang"])
    index = tmp_path / "index"
    s = settings_for(index)
    ingest([src], s)
    m_path = index / IndexStore(index).current_name() / "manifest.json"
    m = json.loads(m_path.read_text())
    m["format_version"] = 1
    m_path.write_text(json.dumps(m))
    with pytest.raises(IncompatibleIndex, match="rag ingest"):
        IndexStore(index).load()
    rep = ingest([src], s)
    assert rep.chunks_embedded == 0 and any("converted" in n for n in rep.notes)
    assert IndexStore(index).read_manifest()["format_version"] == ri.FORMAT_VERSION
    assert_same_view(snapshot_view(index), snapshot_view(rebuilt(tmp_path, src)))


def test_cli_ingest_says_what_it_wrote_and_compact_merges(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang", "tianjin"])
    index = tmp_path / "index"
    p = run_rag("ingest", src, "--index", index, env=WIDE)
    assert p.returncode == 0, p.stderr
    assert "wrote segment seg-000001" in p.stdout
    copy_replies(src, ["zhengzhou"])
    edit(src / "shenyang.txt")
    p = run_rag("ingest", src, "--index", index, env=WIDE)
    assert p.returncode == 0, p.stderr
    gen = IndexStore(index).load()
    n = sum(c.doc_id in ("shenyang", "zhengzhou") for c in gen.chunks)
    out = " ".join(p.stdout.split())
    assert "added 1, updated 1, unchanged 2" in out
    assert f"wrote segment seg-000002 ({n} chunks)" in out and "tombstoned" in out
    if "merged" in out:  # shenyang was over [index] max_dead_fraction of seg-000001: merged automatically
        assert "segment(s) into seg-000003" in out
    p = run_rag("docs", "remove", "tianjin", "--index", index, env=WIDE)
    assert p.returncode == 0, p.stderr
    names = segment_names(index)
    p = run_rag("compact", "--index", index, "--json", env=WIDE)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["merged"] == names and len(names) == 2  # (the removal may already have purged its segment)
    assert segment_names(index) == [rep["merged_into"]]
    p = run_rag("compact", "--index", index, env=WIDE)
    assert p.returncode == 0 and "nothing to merge" in p.stdout
    p = run_rag("ask", "营口市对博士每月补贴多少?", "--index", index, "--json", env=WIDE)
    assert p.returncode == 0 and "2000" in json.loads(p.stdout)["answer"]
