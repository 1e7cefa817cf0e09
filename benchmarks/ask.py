"""Question-answering speed: warm retrieval and extractive answers on the bundled replies, and cold `rag ask`.

    .venv/bin/python benchmarks/ask.py [--index DIR]

Targets: warm retrieval p50 < 30 ms (issue 3), whole extractive answer p50 <= 40 ms (issue 11); cold `rag ask` < 3 s.
Questions: every question of data/gold/qa.jsonl (or --gold), answered --rounds times.

Wall-clock figures depend on what else the 2 cores run; the CPU-time rows (process time of the answering
process, all its threads) do much less, so a figure taken on a busy machine can be read beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.config import load_settings  # noqa: E402
from rag.ingest import ingest  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default=None, help="an existing index (default: build one of data/replies in a temp dir)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gold", default=str(REPO / "data" / "gold" / "qa.jsonl"), help="questions (JSONL with a question field)")
    args = ap.parse_args()
    tmp = None
    settings = load_settings()
    if args.index:
        settings = settings.with_overrides(index_dir=args.index)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="rag-askbench-"))
        cache = REPO / ".cache" / "embeddings"
        settings = settings.with_overrides(index_dir=str(tmp / "index"), **{"embedder.cache_dir": str(cache)})
        ingest([REPO / "data" / "replies"], settings)
    try:
        questions = [json.loads(line)["question"] for line in Path(args.gold).read_text(encoding="utf-8").splitlines() if line.strip()]
        pipe = Pipeline(settings)
        pipe.ask("预热")  # load index, model, jieba
        pipe.retriever.embedder.embed_array(["预热"], is_query=True)
        retr, total, embed, cpu = [], [], [], []
        for _ in range(args.rounds):
            for q in questions:
                c0 = time.process_time()
                a = pipe.ask(q)
                cpu.append((time.process_time() - c0) * 1000)
                retr.append(a.timings_ms["retrieve"])
                total.append(a.timings_ms["total"])
                embed.append(a.timings_ms.get("retrieve.embed", 0.0))
        cold = []
        env = {**os.environ, "RAG_INDEX": str(settings.index_dir)}
        for q in questions[:5]:
            t = time.perf_counter()
            subprocess.run([str(Path(sys.executable).parent / "rag"), "ask", q, "--json"], capture_output=True, env=env, check=False)
            cold.append((time.perf_counter() - t) * 1000)
        rows = [
            ("query embedding (warm)", embed),
            ("retrieval (warm)", retr),
            ("whole extractive answer (warm)", total),
            ("  its CPU time (all threads)", cpu),
            ("cold `rag ask` (new process)", cold),
        ]
        print(f"{len(questions)} questions x {args.rounds} rounds on {settings.index_dir}")
        print(f"{'stage':34} | {'p50 ms':>8} | {'p95 ms':>8} | {'mean ms':>8} | target")
        print(f"{'-' * 34}-|{'-' * 10}|{'-' * 10}|{'-' * 10}|-------")
        targets = {"retrieval (warm)": "p50 < 30", "whole extractive answer (warm)": "p50 <= 40", "cold `rag ask` (new process)": "< 3000"}
        for name, xs in rows:
            print(f"{name:34} | {pct(xs, 50):8.1f} | {pct(xs, 95):8.1f} | {statistics.mean(xs):8.1f} | {targets.get(name, '')}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
