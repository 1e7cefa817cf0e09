"""Shared fixtures: indexes of the bundled replies, built once per test session.

Embeddings are cached across sessions in .cache/embeddings (git-ignored), so only the first run embeds.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REPLIES = REPO / "data" / "replies"
MORE = REPO / "data" / "more-replies"
SHARED_CACHE = REPO / ".cache" / "embeddings"
RAG = str(Path(sys.executable).parent / "rag")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# automatic merges run inside the ingest in tests (deterministic reports); tests/test_segments.py tests "background"
os.environ.setdefault("RAG_INDEX_MERGE", "inline")


def settings_for(index_dir, **kw):
    from rag.config import load_settings

    return load_settings().with_overrides(index_dir=str(index_dir), **{"embedder.cache_dir": str(SHARED_CACHE), **kw})


def pipeline_over(root: Path, replies: dict[str, str]):
    """A pipeline over made-up replies ({file stem: text}) ingested into their own index under `root`."""
    from rag.ingest import ingest
    from rag.pipeline import Pipeline

    (root / "replies").mkdir()
    for name, text in replies.items():
        (root / "replies" / f"{name}.txt").write_text(text, encoding="utf-8")
    ingest([root / "replies"], settings_for(root / "index"))
    return Pipeline(settings_for(root / "index"))


def run_rag(*args, env=None, timeout=600, input=None):
    """Run the real `rag` command; returns CompletedProcess (text)."""
    e = {**os.environ, "RAG_EMBED_CACHE": str(SHARED_CACHE), **(env or {})}
    return subprocess.run([RAG, *map(str, args)], capture_output=True, text=True, env=e, timeout=timeout, input=input)


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory) -> Path:
    """An index of the five bundled replies (data/replies)."""
    from rag.ingest import ingest

    d = tmp_path_factory.mktemp("bundled") / "index"
    ingest([REPLIES], settings_for(d))
    return d


@pytest.fixture(scope="session")
def eval_index(tmp_path_factory) -> Path:
    """An index of the bundled replies plus the 20 extra replies (data/more-replies)."""
    from rag.ingest import ingest

    d = tmp_path_factory.mktemp("eval") / "index"
    ingest([REPLIES, MORE], settings_for(d))
    return d


@pytest.fixture(scope="session")
def bundled_pipeline(bundled_index):
    from rag.pipeline import Pipeline

    return Pipeline(settings_for(bundled_index))


@pytest.fixture(scope="session")
def eval_pipeline(eval_index):
    from rag.pipeline import Pipeline

    return Pipeline(settings_for(eval_index))
