"""Stage 8: the chat app (Gradio 6).

`serve(settings)` builds the index of data/replies when there is none, then serves:

* a chat with history: answers stream in (LLM providers), inline markers [n] hover with their source and a
  click selects that source in the sources panel; follow-ups ("那沈阳呢?") are rewritten with the history;
* a sources panel for the selected answer (city, issuer, title, date, section, the passage with the cited
  sentences marked) and the full reply opened at the cited passage;
* controls: city/province filter, number of passages, answer provider (model/base URL; keys only from the
  environment), example questions;
* a documents tab: the indexed replies, upload (sanitised copies, progress), removal;
* thumbs up/down appended to <index_dir>/feedback.jsonl; per-answer timings; errors as readable messages.

The same question path as the CLI (rag.pipeline.Pipeline) is used; a JSON endpoint `/ask` serves API clients.
"""
from __future__ import annotations

import html
import json
import logging
import os
import queue
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path, PurePath
from typing import Any, Iterator

from .config import REPO_ROOT, Settings
from .places import find_places

log = logging.getLogger("rag.webapp")

# gradio reads these at import time (it is imported only inside build_app)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ALLOWED_UPLOAD = (".txt", ".md", ".html", ".htm", ".docx", ".pdf")
PROVIDERS = ["extractive", "openai", "ollama", "llamacpp"]
EXAMPLES = [
    "哪些城市对首贷户给予贴息?",
    "郑州市对首次获评的专精特新企业奖励多少?",
    "营口市对博士每月补贴多少?",
    "How much does Zhengzhou award a first-time 'little giant' enterprise?",
]
MAX_QUESTION = 2000
BOOTSTRAP_DIR = REPO_ROOT / "data" / "replies"


# ====================================================================== follow-up rewriting
_FOLLOWUP_START = re.compile(r"^\s*(那么|那|还有|另外|再问|and\b|what about\b|how about\b|and what about\b)", re.I)
_FILLER = re.compile(
    r"(那么|那|呢|吗|么|的情况|情况|怎么样|如何|怎样|还有|另外|又|也|是|有|what about|how about|and|the|city of|[\s?？!！。.,，、;；:：])",
    re.I,
)


def _places(text: str) -> list[tuple[str, int, int]]:
    """Places written in text; English names through the glossary (Shenyang -> 沈阳市)."""
    found = find_places(text)
    if not found and re.search(r"[A-Za-z]{3,}", text):
        from .textproc import expand_english

        extra = expand_english(text)
        if extra:
            found = [(full, -1, -1) for full, _, _ in find_places(extra)]
    return found


def rewrite_followup(question: str, previous: list[str]) -> str:
    """Rewrite a short follow-up with the previous question ('那沈阳呢?' after '营口市对博士每月补贴多少?'
    -> '沈阳市对博士每月补贴多少?'). Returns the question unchanged when it stands on its own."""
    q = (question or "").strip()
    prev = next((p for p in reversed(previous or []) if p and p.strip()), "")
    if not q or not prev:
        return q
    places = _places(q)
    rest = q
    for full, s, e in sorted((p for p in places if p[1] >= 0), key=lambda p: -p[1]):
        rest = rest[:s] + rest[e:]
    rest_en = rest
    for full, _, _ in places:  # English place names
        rest_en = re.sub(re.escape(full[:2]), "", rest_en)
    leftover = _FILLER.sub("", rest_en)
    if places and any(p[1] < 0 for p in places):  # English names: drop the matching words
        leftover = re.sub(r"[A-Za-z]+", lambda m: "" if _places(m.group(0)) else m.group(0), leftover)
    starts = bool(_FOLLOWUP_START.match(q))
    short = len(leftover) <= 2
    if not (starts or short):
        return q
    if not places:
        # '那硕士呢?': no place, no topic of its own -> the previous question plus the new words
        if starts and len(leftover) <= 8:
            return f"{prev.rstrip('?？')} {q}".strip()
        return q
    if not short:
        return q  # a full new question that happens to start with 那
    new_names = list(dict.fromkeys(full for full, _, _ in places))
    old = _places(prev)
    old = [p for p in old if p[1] >= 0]
    if old:
        out, pos, used = [], 0, False
        for full, s, e in sorted(old, key=lambda p: p[1]):
            if s < pos:
                continue
            out.append(prev[pos:s])
            if not used:
                out.append("、".join(new_names))
                used = True
            pos = e
        out.append(prev[pos:])
        return re.sub(r"、{2,}", "、", "".join(out))
    # the previous question named no place ('哪些城市…'): ask it about the new place(s)
    lead = "、".join(new_names)
    if re.match(r"^(哪些|哪个|哪几个)(城市|地方|地区|省份?|市)", prev):
        return re.sub(r"^(哪些|哪个|哪几个)(城市|地方|地区|省份?|市)(是否)?", lead + "是否", prev, count=1)
    return f"{lead}{prev}" if re.search(r"[\u4e00-\u9fff]", prev) else f"{prev} ({lead})"


# ====================================================================== HTML rendering
def _e(s: Any) -> str:
    return html.escape(str(s or ""), quote=True)


def _cite_title(c: dict) -> str:
    bits = [c.get("city"), c.get("issuer"), c.get("title") and f"《{c['title']}》", c.get("section")]
    return f"[{c['n']}] " + " · ".join(b for b in bits if b)


_MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\]")


def _markers_html(text: str, citations: list[dict], turn: int) -> str:
    """Escape text and turn [n] (and [1,2]) into hoverable, clickable citation markers."""
    by_n = {int(c["n"]): c for c in citations}
    out, pos = [], 0
    for m in _MARKER.finditer(text):
        nums = [int(x) for x in re.split(r"\s*[,，、]\s*", m.group(1))]
        if not all(n in by_n for n in nums):
            continue
        out.append(_e(text[pos : m.start()]))
        for n in nums:
            out.append(
                f'<a class="cite" href="#src-{turn}-{n}" data-cite-turn="{turn}" data-cite-n="{n}" '
                f'title="{_e(_cite_title(by_n[n]))}">[{n}]</a>'
            )
        pos = m.end()
    out.append(_e(text[pos:]))
    return "".join(out).replace("\n", "<br>")


def _fmt_ms(v: float) -> str:
    return f"{v / 1000:.1f} s" if v >= 10_000 else f"{v:.0f} ms"


def render_answer(rec: dict, turn: int) -> str:
    """One assistant message (single-line HTML so the chat's Markdown leaves it alone)."""
    if rec.get("error"):
        return f'<div class="rag-msg rag-error">⚠ {_e(rec["error"])}</div>'
    a = rec.get("answer") or {}
    if rec.get("pending"):
        partial = rec.get("partial") or ""
        body = _e(partial).replace("\n", "<br>") + '<span class="caret">▌</span>' if partial else '<span class="pending">⏳ 检索中 Searching…</span>'
        head = _rewritten_html(rec)
        return f'<div class="rag-msg streaming">{head}{body}</div>'
    parts = ['<div class="rag-msg">', _rewritten_html(rec)]
    cls = "answer-text abstained" if a.get("abstained") else "answer-text"
    if a.get("abstained"):
        parts.append('<div class="abstain-tag">⚠ 未找到依据 · no supported answer in the replies</div>')
    parts.append(f'<div class="{cls}">{_markers_html(a.get("answer", ""), a.get("citations") or [], turn)}</div>')
    if a.get("unsupported"):
        parts.append(
            '<div class="warn">⚠ 以下数字未在引用段落中找到 · numbers not found in the cited passages: '
            + _e("、".join(a["unsupported"]))
            + "</div>"
        )
    if a.get("unmarked"):
        parts.append(f'<div class="warn soft">⚠ {len(a["unmarked"])} 句无引用 · sentence(s) without a citation</div>')
    if a.get("note"):
        parts.append(f'<div class="note">ℹ {_e(a["note"])}</div>')
    t = a.get("timings_ms") or {}
    keys = [k for k in ("retrieve", "generate", "answer", "total") if k in t]
    if keys:
        labels = {"retrieve": "检索 retrieve", "generate": "生成 generate", "answer": "作答 answer", "total": "总计 total"}
        prov = a.get("provider") or "extractive"
        parts.append('<div class="timings">' + " · ".join(f"{labels[k]} {_fmt_ms(t[k])}" for k in keys) + f" · {_e(prov)}</div>")
    parts.append("</div>")
    return "".join(parts)


def _rewritten_html(rec: dict) -> str:
    rq = rec.get("rewritten") or ""
    if rq and rq != rec.get("question"):
        return f'<div class="rewritten">↪ 问题理解为 understood as: <b>{_e(rq)}</b></div>'
    return ""


def _highlight(passage: str, quote: str) -> str:
    """The passage, escaped, with each cited sentence (Citation.quote lines) in <mark>."""
    quotes = [q.strip() for q in (quote or "").split("\n") if q.strip()]
    spans: list[tuple[int, int]] = []
    for q in quotes:
        i = passage.find(q)
        if i >= 0:
            spans.append((i, i + len(q)))
    spans.sort()
    out, pos = [], 0
    for s, e in spans:
        if s < pos:
            continue
        out.append(_e(passage[pos:s]))
        out.append(f"<mark>{_e(passage[s:e])}</mark>")
        pos = e
    out.append(_e(passage[pos:]))
    return "".join(out).replace("\n", "<br>")


def render_sources(turns: list[dict], turn: int | None = None, selected: int | None = None) -> str:
    """The sources panel for one answer (default: the latest answered one)."""
    answered = [i for i, r in enumerate(turns or []) if r.get("answer")]
    if turn is None or not (0 <= turn < len(turns or [])) or not turns[turn].get("answer"):
        turn = answered[-1] if answered else None
    if turn is None:
        return '<div class="sources-empty">答案的来源会显示在这里。Sources of the answer appear here.</div>'
    rec = turns[turn]
    a = rec["answer"]
    cits = a.get("citations") or []
    q = rec.get("rewritten") or rec.get("question") or ""
    head = f'<div class="sources-head">来源 Sources · #{turn + 1} <span class="q">{_e(q)}</span></div>'
    if not cits:
        msg = "没有引用：资料中未找到依据。No passages cited: the replies do not answer this." if a.get("abstained") else "没有引用。No citations."
        return f'<div id="sources-inner">{head}<div class="sources-empty">{msg}</div></div>'
    items = []
    for c in cits:
        n = int(c["n"])
        sel = " selected" if selected == n else ""
        meta = " · ".join(_e(x) for x in (c.get("issuer"), c.get("date")) if x)
        items.append(
            f'<div class="src{sel}" id="src-{turn}-{n}" data-turn="{turn}" data-n="{n}">'
            f'<div class="src-top"><span class="src-n">[{n}]</span> <span class="src-city">{_e(c.get("city") or "—")}</span>'
            f'<span class="src-meta">{meta}</span></div>'
            f'<div class="src-title">《{_e(c.get("title") or c.get("doc_id"))}》 <span class="src-doc">{_e(c.get("doc_id"))}</span></div>'
            f'<div class="src-section">§ {_e(c.get("section") or "—")}</div>'
            f'<div class="src-text">{_highlight(c.get("text") or "", c.get("quote") or "")}</div>'
            f'<a class="open-full" href="#fulldoc" data-cite-turn="{turn}" data-cite-n="{n}" data-cite-full="1">'
            f"📄 全文 · open the full reply at this section</a></div>"
        )
    return f'<div id="sources-inner">{head}{"".join(items)}</div>'


def render_fulldoc(generation, citation: dict | None) -> str:
    """The whole reply a citation comes from, chunks in order, the cited chunk highlighted (class 'cited')."""
    if not citation:
        return '<div class="sources-empty">选择一个来源查看全文。Pick a source to read the full reply.</div>'
    doc_id = citation.get("doc_id")
    rows = generation.rows_of(doc_id) if generation is not None else []
    if not rows:
        return f'<div class="sources-empty">文档 {_e(doc_id)} 已不在索引中。The document is no longer in the index.</div>'
    meta = generation.docs.get(doc_id)
    bits = [meta.city, meta.issuer, meta.date] if meta else []
    head = (
        f'<div class="fd-head"><b>《{_e((meta and meta.title) or doc_id)}》</b><br>'
        f'{" · ".join(_e(b) for b in bits if b)} <span class="src-doc">{_e(doc_id)}</span></div>'
    )
    out, last_section = [head], None
    cited_id = citation.get("chunk_id") or ""
    for r in sorted(rows, key=lambda r: generation.chunks[r].ordinal):
        ch = generation.chunks[r]
        if ch.section != last_section and ch.section:
            out.append(f'<div class="fd-sec">§ {_e(ch.section)}</div>')
        last_section = ch.section
        cited = ch.chunk_id == cited_id or (not cited_id and ch.text == citation.get("text"))
        body = _highlight(ch.text, citation.get("quote") or "") if cited else _e(ch.text).replace("\n", "<br>")
        out.append(f'<div class="fd-chunk{" cited" if cited else ""}" data-chunk="{_e(ch.chunk_id)}">{body}</div>')
    return '<div class="fd">' + "".join(out) + "</div>"


def chat_messages(turns: list[dict]) -> list[dict]:
    msgs: list[dict] = []
    for i, rec in enumerate(turns):
        msgs.append({"role": "user", "content": _e(rec.get("question", ""))})
        msgs.append({"role": "assistant", "content": render_answer(rec, i)})
    return msgs


# ====================================================================== uploads
def safe_upload_name(original: str) -> str:
    """A file name that is never a path: the stem's safe characters plus an allowed extension.

    Raises ValueError for an extension that is not allowed."""
    name = PurePath(str(original).replace("\\", "/")).name
    ext = ""
    for cand in sorted(ALLOWED_UPLOAD, key=len, reverse=True):
        if name.lower().endswith(cand):
            ext = cand
            break
    if not ext:
        suffix = PurePath(name).suffix or "(none)"
        raise ValueError(f"不支持的文件类型 unsupported file type '{suffix}' (allowed: {' '.join(ALLOWED_UPLOAD)})")
    stem = name[: -len(ext)]
    stem = re.sub(r"[^\w\-]+", "_", stem, flags=re.UNICODE)
    stem = re.sub(r"_+", "_", stem).strip("._-")[:80] or "upload"
    return stem + ext


# ====================================================================== the app
class ChatApp:
    """State shared by all sessions: settings, one Pipeline (its Retriever reloads new index generations)."""

    def __init__(self, settings: Settings):
        from .pipeline import Pipeline

        self.settings = settings
        self.pipeline = Pipeline(settings)
        self.retriever = self.pipeline.retriever
        self.index_dir = Path(settings.index_dir)
        self._feedback_lock = threading.Lock()

    # ------------------------------------------------------------ index info
    def cities(self) -> list[str]:
        try:
            return self.retriever.cities()
        except Exception:
            return []

    def generation(self):
        try:
            return self.retriever.generation()
        except Exception:
            return None

    def doc_rows(self) -> list[list[Any]]:
        gen = self.generation()
        if gen is None:
            return []
        counts: dict[str, int] = {}
        for c in gen.chunks:
            counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
        return [[d, m.city, m.issuer, m.title, m.date, counts.get(d, 0)] for d, m in sorted(gen.docs.items())]

    # ------------------------------------------------------------ questions
    def pipeline_for(self, provider: str, model: str, base_url: str):
        """The shared pipeline, or a light copy with the chosen LLM model/base URL (same retriever)."""
        from .pipeline import Pipeline

        model, base_url = (model or "").strip(), (base_url or "").strip()
        if not model and not base_url:
            return self.pipeline
        over: dict[str, Any] = {}
        if model:
            over["llm.model"] = model
            if provider == "llamacpp" and model.lower().endswith(".gguf"):
                over["llm.model_path"] = model
        if base_url:
            over["llm.base_url"] = base_url
            if provider == "ollama":
                over["llm.host"] = base_url
        return Pipeline(self.settings.with_overrides(**over), retriever=self.retriever)

    def ask(self, question: str, previous: list[str], cities, k, provider, model="", base_url="", on_token=None):
        q = (question or "").strip()
        if not q:
            raise ValueError("请输入问题 · please type a question")
        if len(q) > MAX_QUESTION:
            raise ValueError(f"问题太长 · question too long ({len(q)} characters; at most {MAX_QUESTION})")
        gen = self.retriever.generation()
        if not gen.chunks:
            raise ValueError(f"索引为空 · the index at {self.settings.index_dir} is empty: add replies in the documents tab")
        rewritten = rewrite_followup(q, previous)
        provider = (provider or self.settings.llm.provider or "extractive").lower()
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider '{provider}' (one of {', '.join(PROVIDERS)})")
        pipe = self.pipeline_for(provider, model, base_url)
        ans = pipe.ask(rewritten, k=int(k) if k else None, cities=list(cities) or None if cities else None, provider=provider, on_token=on_token)
        ans.question = q
        ans.rewritten_question = rewritten if rewritten != q else ""
        return ans

    # ------------------------------------------------------------ feedback
    def record_feedback(self, rec: dict, rating: str) -> None:
        a = rec.get("answer") or {}
        row = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "rating": rating,
            "question": rec.get("question", ""),
            "rewritten_question": rec.get("rewritten", ""),
            "answer": a.get("answer", ""),
            "abstained": a.get("abstained", False),
            "provider": a.get("provider", ""),
            "citations": [
                {k: c.get(k) for k in ("n", "doc_id", "chunk_id", "city", "title", "section", "quote")} for c in a.get("citations") or []
            ],
        }
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with self._feedback_lock, open(self.index_dir / "feedback.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    # ------------------------------------------------------------ documents
    @property
    def uploads_dir(self) -> Path:
        return self.index_dir / "uploads"

    def add_files(self, files: list[str], progress_cb=None) -> str:
        """Copy uploads under sanitised names into a fresh directory and ingest them. Returns a status message."""
        from .ingest import IndexLocked, IngestError, Progress, ingest

        if not files:
            return "⚠ 请先选择文件 · choose one or more files first"
        limit = self.settings.app.upload_max_mb * 1024 * 1024
        problems: list[str] = []
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix="up-", dir=self.uploads_dir))
        copied: list[Path] = []
        names: set[str] = set()
        for f in files:
            src = Path(f)
            shown = src.name
            try:
                name = safe_upload_name(src.name)
                size = src.stat().st_size
                if size > limit:
                    raise ValueError(f"文件太大 file too large ({size / 1e6:.1f} MB > {self.settings.app.upload_max_mb} MB)")
                if size == 0:
                    raise ValueError("空文件 empty file")
                if name in names:
                    raise ValueError(f"duplicate name {name}")
                names.add(name)
                target = dest / name
                shutil.copyfile(src, target)
                copied.append(target)
            except (OSError, ValueError) as e:
                problems.append(f"{shown}: {e}")
        if not copied:
            shutil.rmtree(dest, ignore_errors=True)
            return "⚠ 没有导入任何文件 · nothing was ingested\n\n" + "\n".join(f"- {_md(p)}" for p in problems)

        class P(Progress):
            def __init__(self):
                self.total, self.done, self.etotal, self.edone = 0, 0, 0, 0

            def files(self, total):
                self.total = total
                if progress_cb:
                    progress_cb(0, max(1, total), "读取 reading files")

            def file_done(self, path, status):
                self.done += 1
                if progress_cb:
                    progress_cb(self.done, max(1, self.total), "读取 reading files")

            def embed_total(self, total):
                self.etotal = total
                if progress_cb and total:
                    progress_cb(0, total, "向量化 embedding")

            def embed_advance(self, n):
                self.edone += n
                if progress_cb and self.etotal:
                    progress_cb(min(self.edone, self.etotal), self.etotal, "向量化 embedding")

            def stage(self, name):
                if progress_cb and name == "indexing":
                    progress_cb(1, 1, "建索引 indexing")

        try:
            rep = ingest([str(p) for p in copied], self.settings, progress=P())
        except IndexLocked as e:
            shutil.rmtree(dest, ignore_errors=True)
            return f"⚠ 索引正被另一个导入占用 · the index is locked by another ingest: {_md(str(e))}"
        except IngestError as e:
            shutil.rmtree(dest, ignore_errors=True)
            return f"⚠ 导入失败，索引未变 · ingest failed, the index is unchanged: {_md(str(e))}"
        except Exception as e:  # noqa: BLE001 - any failure leaves the previous generation current
            log.exception("ingest failed")
            shutil.rmtree(dest, ignore_errors=True)
            return f"⚠ 导入失败，索引未变 · ingest failed, the index is unchanged: {type(e).__name__}: {_md(str(e))}"
        for path, reason in rep.skipped:
            problems.append(f"{Path(path).name}: {reason}")
        kept = set(rep.added) | set(rep.updated) | set(rep.unchanged)
        for p in copied:  # files that were not ingested do not stay around
            if p.stem not in kept:
                p.unlink(missing_ok=True)
        if not any(dest.iterdir()):
            shutil.rmtree(dest, ignore_errors=True)
        lines = []
        if rep.added or rep.updated or rep.unchanged:
            lines.append(
                f"✅ 已导入 · added {len(rep.added)} ({', '.join(rep.added) or '—'}), updated {len(rep.updated)}"
                f"{' (' + ', '.join(rep.updated) + ')' if rep.updated else ''}, unchanged {len(rep.unchanged)} · "
                f"{rep.chunks_total} chunks in the index · {rep.seconds:.1f} s"
            )
        else:
            lines.append("⚠ 没有导入任何文件，索引未变 · nothing was ingested, the index is unchanged")
        if problems:
            lines.append("\n跳过 skipped:\n" + "\n".join(f"- {_md(p)}" for p in problems))
        return "\n".join(lines)

    def remove(self, doc_ids: list[str]) -> str:
        from .ingest import IndexLocked, IngestError, remove_documents

        doc_ids = [d for d in (doc_ids or []) if d]
        if not doc_ids:
            return "⚠ 请选择要删除的文档 · choose a document to remove"
        gen = self.generation()
        paths = [gen.docs[d].path for d in doc_ids if gen is not None and d in gen.docs]
        try:
            rep = remove_documents(doc_ids, self.settings)
        except IndexLocked as e:
            return f"⚠ 索引正被另一个导入占用 · the index is locked by another ingest: {_md(str(e))}"
        except IngestError as e:
            return f"⚠ {_md(str(e))}"
        up = self.uploads_dir.resolve()
        for p in paths:  # an uploaded copy goes with its document
            try:
                rp = Path(p).resolve()
                if up in rp.parents:
                    rp.unlink(missing_ok=True)
                    if rp.parent != up and not any(rp.parent.iterdir()):
                        rp.parent.rmdir()
            except OSError:
                pass
        return f"🗑 已删除 · removed {', '.join(rep.removed)} · {rep.chunks_total} chunks left"


def _md(s: str) -> str:
    """Text safe inside gr.Markdown (no HTML, no emphasis surprises)."""
    return html.escape(s).replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")


# ---------------------------------------------------------------------- client-side behaviour
_BRIDGE_JS = r"""
window.__ragCite = { props: props, trigger: trigger };
if (!window.__ragCiteBound) {
  window.__ragCiteBound = true;
  document.addEventListener('click', function (ev) {
    // markers in the chat keep only class/href/title (the chat sanitises data-* away): #src-<turn>-<n>
    const a = ev.target && ev.target.closest ? ev.target.closest('a.cite, [data-cite-n]') : null;
    if (!a) return;
    let turn = a.getAttribute('data-cite-turn'), n = a.getAttribute('data-cite-n');
    if (turn === null || n === null) {
      const m = /#src-(\d+)-(\d+)$/.exec(a.getAttribute('href') || '');
      if (!m) return;
      turn = m[1]; n = m[2];
    }
    ev.preventDefault();
    ev.stopPropagation();
    const full = a.getAttribute('data-cite-full') ? 1 : 0;
    document.querySelectorAll('#sources .src.selected').forEach(function (e) { e.classList.remove('selected'); });
    const el = document.querySelector('#sources .src[data-turn="' + turn + '"][data-n="' + n + '"]');
    if (el) { el.classList.add('selected'); el.scrollIntoView({ block: 'nearest' }); }
    const b = window.__ragCite;
    b.props.value = turn + ':' + n + ':' + full + ':' + Date.now();
    b.trigger('submit');
  }, true);
}
"""

_SCROLL_JS = r"""
() => {
  setTimeout(function () {
    const s = document.querySelector('#sources .src.selected');
    if (s) s.scrollIntoView({ block: 'nearest' });
    const c = document.querySelector('#fulldoc .fd-chunk.cited');
    if (c && c.offsetParent !== null) c.scrollIntoView({ block: 'center' });
  }, 120);
}
"""

CSS = r"""
.gradio-container { max-width: 1500px !important; }
#chat .rag-msg { line-height: 1.65; }
#chat .rag-msg .rewritten { font-size: 0.85em; color: var(--body-text-color-subdued); margin-bottom: 4px; }
#chat .rag-msg .abstain-tag { color: #b45309; font-weight: 600; margin-bottom: 4px; }
#chat .rag-msg .abstained { color: #92400e; }
#chat .rag-msg .warn { color: #b91c1c; font-size: 0.9em; margin-top: 6px; }
#chat .rag-msg .warn.soft { color: #b45309; }
#chat .rag-msg .note { color: #1d4ed8; font-size: 0.85em; margin-top: 6px; }
#chat .rag-msg .timings { color: var(--body-text-color-subdued); font-size: 0.75em; margin-top: 8px; border-top: 1px dashed var(--border-color-primary); padding-top: 3px; }
#chat .rag-error { color: #b91c1c; }
a.cite { font-size: 0.75em; vertical-align: super; text-decoration: none; color: #2563eb; cursor: pointer; padding: 0 1px; font-weight: 600; }
a.cite:hover { text-decoration: underline; background: #dbeafe; border-radius: 3px; }
#sources-inner { max-height: 660px; overflow-y: auto; padding-right: 4px; }
#sources .sources-head { font-weight: 600; margin: 2px 0 8px; }
#sources .sources-head .q { font-weight: normal; color: var(--body-text-color-subdued); }
.sources-empty { color: var(--body-text-color-subdued); padding: 8px 0; }
#sources .src { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px; margin-bottom: 8px; }
#sources .src.selected { border: 2px solid #2563eb; background: rgba(37, 99, 235, 0.06); }
#sources .src-n { color: #2563eb; font-weight: 700; }
#sources .src-city { font-weight: 700; }
#sources .src-meta { color: var(--body-text-color-subdued); font-size: 0.85em; margin-left: 8px; }
#sources .src-title { font-size: 0.9em; margin-top: 2px; }
.src-doc { color: var(--body-text-color-subdued); font-size: 0.8em; font-family: monospace; }
#sources .src-section { color: #047857; font-size: 0.85em; margin: 2px 0 4px; }
#sources .src-text { font-size: 0.9em; line-height: 1.6; }
#sources mark, #fulldoc mark { background: #fde68a; padding: 0 1px; }
#sources .open-full { display: inline-block; margin-top: 4px; font-size: 0.85em; color: #2563eb; cursor: pointer; }
#fulldoc .fd { max-height: 540px; overflow-y: auto; padding-right: 4px; }
#fulldoc .fd-head { margin-bottom: 6px; }
#fulldoc .fd-sec { color: #047857; font-weight: 600; font-size: 0.9em; margin-top: 8px; }
#fulldoc .fd-chunk { font-size: 0.9em; line-height: 1.6; padding: 4px 6px; border-left: 3px solid transparent; }
#fulldoc .fd-chunk.cited { border-left-color: #2563eb; background: rgba(37, 99, 235, 0.07); }
#cite-bridge { display: none; }
footer { display: none !important; }
"""


def build_app(settings: Settings):
    """The Gradio Blocks of the chat app (gradio imported here: only `serve` needs it)."""
    import gradio as gr

    app = ChatApp(settings)
    k_default = settings.retrieval.k
    conc = max(1, int(settings.app.concurrency))

    # ------------------------------------------------------------ handlers
    def respond(message, turns, cities, k, provider, model, base_url):
        turns = [dict(t) for t in (turns or [])]
        q = (message or "").strip()
        if not q:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        previous = [t.get("rewritten") or t.get("question", "") for t in turns if t.get("answer")]
        rec: dict[str, Any] = {"question": q, "pending": True}
        turns.append(rec)
        i = len(turns) - 1
        yield chat_messages(turns), turns, "", '<div class="sources-empty">⏳ 检索中 Searching…</div>', render_fulldoc(None, None)
        provider = (provider or "extractive").lower()
        try:
            if provider == "extractive":
                ans = app.ask(q, previous, cities, k, provider, model, base_url)
            else:
                ans = None
                for item in _stream(lambda on_token: app.ask(q, previous, cities, k, provider, model, base_url, on_token=on_token)):
                    if isinstance(item, str):
                        rec["partial"] = item
                        if not rec.get("rewritten"):
                            rec["rewritten"] = rewrite_followup(q, previous)
                        yield chat_messages(turns), turns, gr.skip(), gr.skip(), gr.skip()
                    else:
                        ans = item
            rec.pop("pending", None)
            rec.pop("partial", None)
            rec["rewritten"] = ans.rewritten_question
            rec["answer"] = ans.to_dict()
            rec["time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        except Exception as e:  # noqa: BLE001 - shown in the chat, never a stack trace
            rec.pop("pending", None)
            rec.pop("partial", None)
            rec["error"] = _readable(e)
        turns[i] = rec
        yield chat_messages(turns), turns, gr.skip(), render_sources(turns, i), gr.skip()

    def select_source(value, turns):
        try:
            parts = (value or "").split(":")
            turn, n, full = int(parts[0]), int(parts[1]), parts[2] == "1"
        except (ValueError, IndexError):
            return gr.skip(), gr.skip(), gr.skip()
        turns = turns or []
        if not (0 <= turn < len(turns)) or not turns[turn].get("answer"):
            return gr.skip(), gr.skip(), gr.skip()
        cit = next((c for c in turns[turn]["answer"].get("citations") or [] if int(c["n"]) == n), None)
        fd = render_fulldoc(app.generation(), cit)
        acc = gr.Accordion(open=True) if full else gr.skip()
        return render_sources(turns, turn, n), fd, acc

    def on_like(turns, data):
        try:
            idx = data.index if isinstance(data.index, int) else data.index[0]
            turn = idx // 2
            if not turns or not (0 <= turn < len(turns)) or not turns[turn].get("answer"):
                return
            liked = data.liked
            rating = "up" if liked is True else "down" if liked is False else (str(liked) if liked else "cleared")
            app.record_feedback(turns[turn], rating)
            gr.Info("谢谢反馈 · thanks for the feedback")
        except Exception as e:  # noqa: BLE001
            log.exception("feedback failed")
            gr.Warning(f"feedback not saved: {_readable(e)}")

    on_like.__annotations__["data"] = gr.LikeData  # real class: `from __future__ import annotations` makes it a string

    def clear():
        return [], [], render_sources([]), render_fulldoc(None, None), ""

    def refresh_docs(sel_cities=None):
        rows = app.doc_rows()
        ids = [r[0] for r in rows]
        cities = app.cities()
        keep = [c for c in (sel_cities or []) if c in cities]
        summary = f"{len(rows)} 篇答复 documents · {sum(r[5] for r in rows)} 段 chunks · index `{_md(str(settings.index_dir))}`"
        return rows, gr.Dropdown(choices=ids, value=[]), gr.Dropdown(choices=cities, value=keep), summary

    def upload(files, sel_cities, progress=gr.Progress()):
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        try:
            msg = app.add_files(paths, progress_cb=lambda d, t, desc: progress((d, t), desc=desc))
        except Exception as e:  # noqa: BLE001
            log.exception("upload failed")
            msg = f"⚠ {_md(_readable(e))}"
        return (msg, None, *refresh_docs(sel_cities))

    def remove(doc_ids, sel_cities):
        try:
            msg = app.remove(list(doc_ids or []))
        except Exception as e:  # noqa: BLE001
            log.exception("remove failed")
            msg = f"⚠ {_md(_readable(e))}"
        return (msg, *refresh_docs(sel_cities))

    def api_ask(question: str, cities: list[str] | None = None, k: int = 0, provider: str = "extractive", history: list[str] | None = None) -> dict:
        """Answer one question (JSON): answer, abstained, citations, timings_ms, rewritten_question …"""
        try:
            ans = app.ask(question, list(history or []), cities or None, k or None, provider or "extractive")
            return ans.to_dict()
        except Exception as e:  # noqa: BLE001
            return {"question": question, "error": _readable(e), "answer": "", "abstained": True, "citations": []}

    # ------------------------------------------------------------ layout
    with gr.Blocks(title="政府答复问答 · Cited answers from government replies") as demo:
        turns = gr.State([])
        gr.Markdown(
            "## 政府答复问答 · Cited answers from government replies on SMEs\n"
            "答案只引用答复原文，每句后标注来源 [n]；悬停查看来源，点击在右侧显示。"
            " Answers quote the replies; hover a marker [n] for its source, click it to show the passage."
        )
        with gr.Tabs():
            with gr.Tab("问答 Chat", id="chat-tab"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=420):
                        chatbot = gr.Chatbot(
                            elem_id="chat",
                            label="对话 Chat",
                            show_label=False,
                            height=560,
                            latex_delimiters=[],
                            feedback_options=("Like", "Dislike"),
                            buttons=["copy"],
                            placeholder="问一个关于各地中小企业政策答复的问题。Ask about the replies.",
                        )
                        with gr.Row():
                            question = gr.Textbox(
                                elem_id="question", show_label=False, scale=5, lines=1, max_lines=4, autofocus=True,
                                placeholder="例如：营口市对博士每月补贴多少?  (Enter 发送 / to send)",
                            )
                            ask_btn = gr.Button("提问 Ask", variant="primary", scale=1, elem_id="ask-btn", min_width=90)
                        gr.Examples(EXAMPLES, inputs=[question], label="示例问题 Examples")
                        clear_btn = gr.Button("清空对话 Clear chat", size="sm", elem_id="clear-btn")
                    with gr.Column(scale=2, min_width=360):
                        with gr.Accordion("设置 Settings", open=False, elem_id="settings"):
                            city_dd = gr.Dropdown(
                                choices=app.cities(), value=[], multiselect=True, label="城市/省份 City / province filter",
                                info="空 = 全部 · empty = all (places named in the question are used otherwise)", elem_id="cities",
                            )
                            k_slider = gr.Slider(1, 20, value=k_default, step=1, label="段落数 Passages (k)", elem_id="k")
                            provider_dd = gr.Dropdown(
                                PROVIDERS, value=(settings.llm.provider or "extractive").lower() if (settings.llm.provider or "extractive").lower() in PROVIDERS else "extractive",
                                label="回答方式 Answer provider", elem_id="provider",
                                info=f"API keys only from the environment (${settings.llm.api_key_env}); LLM answers are checked against the passages",
                            )
                            model_tb = gr.Textbox(value=settings.llm.model, label="模型 Model (name, or GGUF path for llamacpp)", elem_id="model")
                            base_tb = gr.Textbox(value=settings.llm.base_url, label="Base URL (OpenAI-compatible endpoint / ollama host)", elem_id="base-url")
                        sources = gr.HTML(render_sources([]), elem_id="sources", js_on_load=None, label="来源 Sources")
                        with gr.Accordion("全文 Full reply", open=False, elem_id="fulldoc-acc") as fulldoc_acc:
                            fulldoc = gr.HTML(render_fulldoc(None, None), elem_id="fulldoc", js_on_load=None)
                bridge = gr.HTML("", elem_id="cite-bridge", js_on_load=_BRIDGE_JS, html_template="")
            with gr.Tab("文档 Documents", id="docs-tab"):
                docs_summary = gr.Markdown(elem_id="docs-summary")
                docs_table = gr.Dataframe(
                    headers=["id", "city", "issuer", "title", "date", "chunks"], datatype=["str", "str", "str", "str", "str", "number"],
                    interactive=False, elem_id="docs-table", wrap=True, label="已索引的答复 Indexed replies",
                )
                with gr.Row():
                    with gr.Column():
                        upload_files = gr.File(
                            file_count="multiple", file_types=list(ALLOWED_UPLOAD), label=f"上传答复 Upload replies ({' '.join(ALLOWED_UPLOAD)}, ≤ {settings.app.upload_max_mb} MB)",
                            elem_id="upload",
                        )
                        upload_btn = gr.Button("导入 Add to index", variant="primary", elem_id="upload-btn")
                    with gr.Column():
                        remove_dd = gr.Dropdown(choices=[], multiselect=True, label="删除文档 Remove documents", elem_id="remove-ids")
                        remove_btn = gr.Button("删除 Remove", variant="stop", elem_id="remove-btn")
                        refresh_btn = gr.Button("刷新 Refresh", size="sm")
                docs_status = gr.Markdown(elem_id="docs-status")

        # ------------------------------------------------------------ events
        ask_inputs = [question, turns, city_dd, k_slider, provider_dd, model_tb, base_tb]
        ask_outputs = [chatbot, turns, question, sources, fulldoc]
        for ev in (question.submit, ask_btn.click):
            ev(respond, ask_inputs, ask_outputs, api_visibility="private", concurrency_id="qa", concurrency_limit=conc)
        bridge.submit(select_source, [bridge, turns], [sources, fulldoc, fulldoc_acc], api_visibility="private", queue=False).then(
            None, None, None, js=_SCROLL_JS
        )
        chatbot.like(on_like, [turns], None, api_visibility="private")
        clear_btn.click(clear, None, [chatbot, turns, sources, fulldoc, question], api_visibility="private", queue=False)
        chatbot.clear(clear, None, [chatbot, turns, sources, fulldoc, question], api_visibility="private", queue=False)
        docs_outputs = [docs_table, remove_dd, city_dd, docs_summary]
        upload_btn.click(upload, [upload_files, city_dd], [docs_status, upload_files, *docs_outputs], api_visibility="private", concurrency_id="ingest", concurrency_limit=1)
        remove_btn.click(remove, [remove_dd, city_dd], [docs_status, *docs_outputs], api_visibility="private", concurrency_id="ingest", concurrency_limit=1)
        refresh_btn.click(refresh_docs, [city_dd], docs_outputs, api_visibility="private", queue=False)
        demo.load(refresh_docs, [city_dd], docs_outputs, api_visibility="private", queue=False)
        gr.api(api_ask, api_name="ask", concurrency_id="qa", concurrency_limit=conc)

    demo.queue(default_concurrency_limit=conc, max_size=None)
    demo.rag_app = app  # for tests and embedding
    demo.rag_respond = respond
    return demo


def _stream(call) -> Iterator[Any]:
    """Run call(on_token) in a worker thread; yield the accumulated text as tokens arrive, then the result."""
    q: queue.Queue = queue.Queue()
    box: dict[str, Any] = {}

    def worker():
        try:
            box["result"] = call(lambda tok: q.put(str(tok)))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e
        finally:
            q.put(None)

    t = threading.Thread(target=worker, daemon=True, name="rag-llm-stream")
    t.start()
    text, last = "", 0.0
    while True:
        try:
            tok = q.get(timeout=0.25)
        except queue.Empty:
            continue
        if tok is None:
            break
        text += tok
        now = time.monotonic()
        if now - last >= 0.08:
            last = now
            yield text
    t.join()
    if "error" in box:
        raise box["error"]
    yield box["result"]


def _readable(e: BaseException) -> str:
    from .index import IndexError_

    msg = str(e).strip() or type(e).__name__
    if isinstance(e, (ValueError, IndexError_)):
        return msg
    try:
        from .embedder import EmbedderError
        from .ingest import IngestError

        if isinstance(e, (EmbedderError, IngestError)):
            return msg
    except Exception:  # pragma: no cover
        pass
    return f"出错了 · something went wrong ({type(e).__name__}: {msg})"


# ====================================================================== serving
def bootstrap_index(settings: Settings, source: Path = BOOTSTRAP_DIR) -> bool:
    """Build the index of the bundled replies when the index has no documents. True if it was built."""
    from .index import IndexStore
    from .ingest import ingest

    manifest = IndexStore(settings.index_dir).read_manifest()
    if manifest and manifest.get("chunk_count", 0) > 0:
        return False
    if not source.is_dir():
        log.warning("no documents in %s and no %s to bootstrap from", settings.index_dir, source)
        return False
    print(f"rag: the index at {settings.index_dir} is empty; building it from {source} …", flush=True)
    rep = ingest([source], settings, lock_timeout=600)
    print(f"rag: indexed {len(rep.added) + len(rep.updated)} replies, {rep.chunks_total} chunks in {rep.seconds:.1f} s", flush=True)
    return True


def serve(settings: Settings, bootstrap: bool = True, block: bool = True):
    """Serve the chat at http://<settings.app.host>:<settings.app.port>."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_OFFLINE"] = "1"
    if bootstrap:
        bootstrap_index(settings)
    demo = build_app(settings)
    app: ChatApp = demo.rag_app
    try:  # warm up: load the index and the embedder before the first question
        gen = app.retriever.generation()
        if gen.chunks:
            app.retriever.embedder.embed_array(["warm up"], is_query=True)
    except Exception as e:  # noqa: BLE001 - the chat shows the problem at the first question
        print(f"rag: warning: {_readable(e)}", flush=True)
    host, port = settings.app.host or "127.0.0.1", int(settings.app.port or 7860)
    print(f"rag: serving {settings.index_dir} at http://{host}:{port}", flush=True)
    demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=f"{settings.app.upload_max_mb}mb",
        show_error=False,
        ssr_mode=False,
        prevent_thread_lock=not block,
        quiet=True,
        css=CSS,
        footer_links=[],
        enable_monitoring=False,
        mcp_server=False,
        pwa=False,
    )
    return demo


__all__ = ["serve", "build_app", "bootstrap_index", "rewrite_followup", "safe_upload_name", "render_answer", "render_sources", "ChatApp"]
