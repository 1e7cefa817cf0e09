"""LLM answer latency: time to the first token and total time per question, p50, for a local GGUF model.

    .venv/bin/python benchmarks/llm.py --model /path/to/model.gguf [--index DIR] [--n 6] [--structured auto|off]
        [--context plan|chunks] [--threads 2] [--max-tokens 192]

The model is loaded and warmed first (one question, not counted), then each question is asked through the
pipeline exactly as `rag ask --llm llamacpp` asks it (retrieval, the plan's passages, structured output,
the gate). First token = from the question to the model's first streamed piece; total = the whole answer,
checked. Questions: the first answerable Chinese questions of data/gold/fresh.jsonl (--n of them).
Target (issue 12), with the default local model on a 2-core machine: first token <= 10 s, p50 total <= 30 s.
Say what else was running when you quote a number: a busy machine is several times slower.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.config import load_settings  # noqa: E402
from rag.ingest import ingest  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a GGUF file (llm.model_path)")
    ap.add_argument("--index", default=None, help="an index holding data/replies and data/more-replies (default: build one in a temp dir)")
    ap.add_argument("--n", type=int, default=6, help="questions timed")
    ap.add_argument("--structured", default="auto")
    ap.add_argument("--context", default="plan")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=192)
    args = ap.parse_args()
    settings = load_settings()
    llm = {"llm.provider": "llamacpp", "llm.model_path": args.model, "llm.structured": args.structured, "llm.context": args.context,
           "llm.n_threads": args.threads, "llm.max_tokens": args.max_tokens, "llm.timeout": 900.0}
    if args.index:
        settings = settings.with_overrides(index_dir=args.index, **llm)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="rag-llmbench-"))
        settings = settings.with_overrides(index_dir=str(tmp / "index"), **{"embedder.cache_dir": str(REPO / ".cache" / "embeddings")}, **llm)
        ingest([REPO / "data" / "replies", REPO / "data" / "more-replies"], settings)
    gold = [json.loads(x) for x in (REPO / "data" / "gold" / "fresh.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    questions = [g["question"] for g in gold if g["answerable"] and g["type"] != "english"][: args.n]
    pipe = Pipeline(settings)
    t = time.perf_counter()
    pipe.ask("营口市对博士每月补贴多少?")  # load the model, warm the index
    print(f"model {Path(args.model).name}: loaded and warmed in {time.perf_counter() - t:.1f} s · {os.cpu_count()} cores · "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    first, total, shown = [], [], 0
    for q in questions:
        a = pipe.ask(q)
        ft = a.timings_ms.get("first_token")
        if ft is not None:
            first.append(ft)
        total.append(a.timings_ms["total"])
        shown += a.llm.get("shown") == "llm"
        print(f"  first token {ft / 1000 if ft else float('nan'):6.1f} s · total {a.timings_ms['total'] / 1000:6.1f} s · "
              f"{'llm' if a.llm.get('shown') == 'llm' else 'extractive'} · {q[:40]}")
    print()
    print("| model | questions | first token p50 | total p50 | LLM answers shown |")
    print("|---|---|---|---|---|")
    p50 = statistics.median
    print(f"| {Path(args.model).name} | {len(questions)} | {p50(first) / 1000 if first else float('nan'):.1f} s | {p50(total) / 1000:.1f} s | {shown}/{len(questions)} |")
    print(f"(load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
