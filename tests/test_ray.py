"""`rag ingest --ray`: the embedding runs in Ray (ray.data map_batches with embedder actors) and gives the index
the same vectors as the plain ingest; the index is written as without Ray."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("ray")

from conftest import REPLIES, run_rag, settings_for  # noqa: E402
from rag.index import IndexStore  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_ingest_with_local_ray_gives_the_same_index(tmp_path, backend):
    if backend == "milvus":
        pytest.importorskip("milvus_lite")
    src = tmp_path / "src"
    src.mkdir()
    (src / "zhengzhou.txt").write_bytes((REPLIES / "zhengzhou.txt").read_bytes())
    env = {"RAG_EMBED_CACHE": str(tmp_path / "cache"), "RAG_INDEX_BACKEND": backend}  # an empty cache: Ray embeds every passage
    p = run_rag("ingest", src, "--index", tmp_path / "ray", "--ray", "local", "--ray-workers", "2", "--json", env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    rep = json.loads(p.stdout)
    assert rep["added"] == ["zhengzhou"] and rep["chunks_embedded"] == rep["chunks_total"] > 5
    p = run_rag("ask", "郑州对首次认定的专精特新小巨人企业奖励多少?", "--index", tmp_path / "ray", "--json", env=env)
    assert p.returncode == 0 and json.loads(p.stdout)["citations"][0]["doc_id"] == "zhengzhou", p.stderr
    if backend == "faiss":
        from rag.ingest import ingest

        plain = tmp_path / "plain"
        ingest([src], settings_for(plain))
        a, b = IndexStore(tmp_path / "ray").load(), IndexStore(plain).load()
        assert [c.chunk_id for c in a.chunks] == [c.chunk_id for c in b.chunks]
        rows = range(len(a.chunks))
        assert np.allclose(a.vectors_of(rows), b.vectors_of(rows), atol=1e-5)


@pytest.mark.slow
def test_unreachable_ray_cluster_is_a_clear_error_and_no_index_is_written(tmp_path):
    p = run_rag("ingest", REPLIES / "zhengzhou.txt", "--index", tmp_path / "i", "--ray", "ray://127.0.0.1:1", env={"RAG_EMBED_CACHE": str(tmp_path / "c")}, timeout=300)
    assert p.returncode == 1 and "cannot start or reach Ray at ray://127.0.0.1:1" in " ".join(p.stderr.split()), p.stderr[-2000:]
    assert "Traceback" not in p.stderr and not IndexStore(tmp_path / "i").exists()


def test_a_local_ray_that_times_out_once_is_started_again(monkeypatch):
    """A local Ray started on a loaded machine can time out once (seen in a fresh-clone `make test`): started
    again; a cluster address that fails is reported at once, as one clear error."""
    import ray

    from rag import distributed
    from rag.embedder import EmbedderError

    calls = []

    def init(**kw):
        calls.append(kw)
        if len(calls) == 1:
            raise RuntimeError("The current node timed out during startup.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    assert distributed.start_ray(None) is ray and len(calls) == 2
    calls.clear()
    monkeypatch.setattr(ray, "init", lambda **kw: (_ for _ in ()).throw(ConnectionError("refused")))
    import pytest

    with pytest.raises(EmbedderError, match="at ray://10.0.0.1:10001"):
        distributed.start_ray("ray://10.0.0.1:10001")
