"""Latency of the bundled local models, in-process (llamacpp): load, time to first token, whole answer.

    .venv/bin/python benchmarks/local_llm.py [--index DIR] [--models qwen2.5-coder-0.5b qwen2.5-coder-1.5b] [--k 1]

Each question is answered from its best passage (k=1 by default) with the settings of rag.toml ([llm]
n_ctx, max_tokens, n_threads), after one warm-up question, so the figures are those of a model that stays
loaded between questions (the chat and `rag ask` in one process). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag import models  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.ingest import ingest  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402

QUESTIONS = ["营口市对博士每月补贴多少?", "郑州市对首次认定的国家级专精特新小巨人企业奖励多少?", "沈阳市累计增加首贷户多少户?"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="")
    ap.add_argument("--models", nargs="*", default=list(models.CATALOG))
    ap.add_argument("--k", type=int, default=1)
    args = ap.parse_args()
    settings = load_settings()
    index = args.index
    if not index:
        index = str(Path(tempfile.mkdtemp(prefix="rag-bench-")) / "index")
        ingest([REPO / "data" / "replies"], settings.with_overrides(index_dir=index))
    rows = []
    for name in args.models:
        s = settings.with_overrides(index_dir=index, **{"llm.provider": "llamacpp", "llm.model_path": name})
        pipe = Pipeline(s)
        t = time.perf_counter()
        models.assemble(name)
        from rag.providers import get

        get("llamacpp").warm(s)
        load = time.perf_counter() - t
        pipe.ask(QUESTIONS[0], k=args.k)  # warm-up
        firsts, totals = [], []
        for q in QUESTIONS:
            first: list[float] = []
            t0 = time.perf_counter()
            ans = pipe.ask(q, k=args.k, on_token=lambda tok: first or first.append(time.perf_counter()))
            total = time.perf_counter() - t0
            firsts.append((first[0] - t0) if first else float("nan"))
            totals.append(total)
            print(f"{name} · {q} · first {firsts[-1]:.1f} s · total {total:.1f} s · {ans.provider}: {ans.answer[:80]!r} {ans.note}", file=sys.stderr)
        rows.append((name, load, statistics.median(firsts), max(firsts), statistics.median(totals), max(totals)))
    print("| model | load (s) | first token p50 / max (s) | total p50 / max (s) |\n|---|---|---|---|")
    for name, load, f50, fmax, t50, tmax in rows:
        print(f"| {name} | {load:.1f} | {f50:.1f} / {fmax:.1f} | {t50:.1f} / {tmax:.1f} |")
    print(f"\nk={args.k}, n_ctx={settings.llm.n_ctx}, max_tokens={settings.llm.max_tokens}, n_threads={settings.llm.n_threads or 'auto'}")


if __name__ == "__main__":
    main()
