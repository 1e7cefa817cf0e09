"""Ingest benchmark: raw embedder throughput vs the whole ingest, index size, re-ingest time.

    .venv/bin/python benchmarks/ingest.py [--replies data/replies]

Prints a table. Targets (issue 2): the pipeline adds < 10% on top of the raw embedder time; a re-ingest
of unchanged files takes < 1 s.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.chunker import chunk_document  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedder import make_embedder  # noqa: E402
from rag.ingest import ingest  # noqa: E402
from rag.loader import discover, read_file  # noqa: E402
from rag.parser import parse  # noqa: E402


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replies", default=str(REPO / "data" / "replies"))
    args = ap.parse_args()
    settings = load_settings()
    files = discover([args.replies]).files
    chunks = [c for f in files for c in chunk_document(parse(read_file(f)), settings.chunker)]
    texts = [c.context_text() for c in chunks]
    chars = sum(len(t) for t in texts)
    emb = make_embedder(settings.embedder)
    emb.embed_array(["预热 warm-up"])  # load the model outside the timing
    t = time.perf_counter()
    for i in range(0, len(texts), settings.embedder.batch_size):
        emb.embed_array(texts[i : i + settings.embedder.batch_size])
    t_emb = time.perf_counter() - t

    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        s = settings.with_overrides(index_dir=str(tmp / "index"), **{"embedder.cache_dir": str(tmp / "cache")})
        t = time.perf_counter()
        rep = ingest([args.replies], s)
        t_full = time.perf_counter() - t
        t = time.perf_counter()
        rep2 = ingest([args.replies], s)
        t_again = time.perf_counter() - t
        size = dir_size(tmp / "index")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    overhead = (t_full - t_emb) / t_emb * 100
    rows = [
        ("documents", f"{len(files)}"),
        ("chunks", f"{len(chunks)}"),
        ("characters embedded", f"{chars}"),
        ("embedder alone", f"{t_emb:.2f} s · {chars / t_emb:,.0f} chars/s · {len(chunks) / t_emb:.1f} chunks/s"),
        ("whole ingest (cold)", f"{t_full:.2f} s · {chars / t_full:,.0f} chars/s · {rep.chunks_total / t_full:.1f} chunks/s"),
        ("pipeline overhead", f"{overhead:+.1f} % (target < 10 %)"),
        ("re-ingest unchanged", f"{t_again:.3f} s, {rep2.chunks_embedded} embedded (target < 1 s)"),
        ("index size on disk", f"{size / 1024:.0f} KiB"),
        ("embedder", emb.identity),
    ]
    w = max(len(a) for a, _ in rows)
    print(f"{'measure'.ljust(w)} | value")
    print(f"{'-' * w}-|------")
    for a, b in rows:
        print(f"{a.ljust(w)} | {b}")


if __name__ == "__main__":
    main()
