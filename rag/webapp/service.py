"""What the chat does, without Gradio: one `ChatService` per server (settings, one Pipeline whose Retriever
reloads new index generations), answering a `Turn` (with the hints the page shows: the filter excluded the
answer, the index is being updated, did you mean, an overview for a vague question, follow-ups), feedback,
uploads, removal with undo, coverage of the index.
"""
from __future__ import annotations

import html
import json
import logging
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any, Callable

from ..config import Settings
from ..providers import PROVIDERS, REGISTRY
from ..followup import rewrite_followup
from ..places import find_places
from .render import figures
from .state import Turn

log = logging.getLogger("rag.webapp")

ALLOWED_UPLOAD = (".txt", ".md", ".html", ".htm", ".docx", ".pdf")
MAX_QUESTION = 2000
TRASH_KEEP_S = 24 * 3600


class ProviderMissing(ValueError):
    pass


def provider_problem(provider: str) -> str:
    """'' when the provider's packages are importable, else one line saying which command installs them
    (`make run` installs only the extractive chat). From the provider registry (rag/providers.py)."""
    p = REGISTRY.get((provider or "").lower())
    return p.problem() if p is not None else ""


def provider_notes(provider: str, settings: Settings) -> str:
    """What the settings panel says under the provider: not installed, or what else it needs (a key, a model)."""
    p = REGISTRY.get((provider or "").lower())
    if p is None:
        return ""
    problem = provider_problem(p.name)
    if problem:
        return problem
    return "\n".join(f"⚠ {md_safe(x)}" for x in p.needs(settings))


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


def md_safe(s: str) -> str:
    """Text safe inside gr.Markdown (no HTML, no emphasis surprises)."""
    return html.escape(s).replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")


def readable(e: BaseException) -> str:
    from ..index import IndexError_

    msg = str(e).strip() or type(e).__name__
    if isinstance(e, (ValueError, IndexError_)):
        return msg
    try:
        from ..embedder import EmbedderError
        from ..ingest import IngestError

        if isinstance(e, (EmbedderError, IngestError)):
            return msg
    except Exception:  # pragma: no cover
        pass
    return f"出错了 · something went wrong ({type(e).__name__}: {msg})"


# ---------------------------------------------------------------------- pure question helpers
_QUESTION_WORD = re.compile(r"多少|哪些|哪个|哪里|什么|如何|怎么|怎样|吗|是否|几|谁|何|呢|么|有没有|能否|可以")
_ENUM = re.compile(r"^\s*(（[一二三四五六七八九十]+）|\([一二三四五六七八九十]+\)|[一二三四五六七八九十]+[、是]|\d+[.、．)）]|[①-⑳])\s*")


def is_vague(question: str) -> bool:
    """A bare topic ('贷款', '人才补贴'): a few characters, no question word, no place."""
    core = re.sub(r"[\s?？!！。.,，、;；:：]+", "", question or "")
    if not core or len(core) > 6 or re.search(r"[A-Za-z0-9]", core):
        return False
    return not _QUESTION_WORD.search(core) and not find_places(core)


def near_miss(question: str, places: list[str]) -> tuple[str, str] | None:
    """(written, meant) for a place written with one wrong character ('郑洲' -> '郑州'), when the question names
    no known place. Only names of indexed places are offered."""
    if find_places(question):
        return None
    for full in places:
        stem = re.sub(r"(市|省|自治区|特别行政区)$", "", full)
        if len(stem) < 2 or stem in question:
            continue
        n = len(stem)
        for i in range(len(question) - n + 1):
            w = question[i : i + n]
            if not all("\u4e00" <= ch <= "\u9fff" for ch in w):
                continue
            if sum(a != b for a, b in zip(w, stem)) != 1 or (n == 2 and w[0] != stem[0]):
                continue
            after = question[i + n : i + n + 1]
            if after in ("", "市", "省") or after in "的对在有呢，,?？。 和与":
                return w, stem
    return None


def item_label(section_last: str) -> str:
    """'三是设立续贷服务中心，为企业…' -> '设立续贷服务中心' (an outline item's title, for a follow-up question)."""
    s = _ENUM.sub("", section_last or "")
    s = re.split(r"[，。；：:,;！？?]", s, maxsplit=1)[0].strip()
    s = re.sub(r"(方面|工作)$", "", s)
    return s[:20]


# ---------------------------------------------------------------------- the service
class ChatService:
    """State shared by all sessions of one server."""

    def __init__(self, settings: Settings):
        from ..pipeline import Pipeline

        self.settings = settings
        self.pipeline = Pipeline(settings)
        self.retriever = self.pipeline.retriever
        self.index_dir = Path(settings.index_dir)
        self._feedback_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._ingesting: dict[str, list[str]] = {}  # token -> file names being ingested by this server
        self._cancel: dict[str, threading.Event] = {}  # session -> Stop pressed

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

    def coverage(self) -> dict[str, Any]:
        gen = self.generation()
        docs = list(gen.docs.values()) if gen is not None else []
        dates = sorted(m.date for m in docs if m.date)
        return {
            "docs": len(docs),
            "chunks": len(gen.chunks) if gen is not None else 0,
            "places": Counter(m.city or "未注明 unknown" for m in docs).most_common(),
            "issuers": Counter(m.issuer or "未注明 unknown" for m in docs).most_common(),
            "years": sorted(Counter(m.year or "未注明 unknown" for m in docs).items()),
            "first": dates[0] if dates else "",
            "last": dates[-1] if dates else "",
            "updating": self.ingest_status(),
        }

    # ------------------------------------------------------------ ingest status (uploads in this server)
    @contextmanager
    def ingesting(self, names: list[str]):
        token = uuid.uuid4().hex
        with self._status_lock:
            self._ingesting[token] = list(names)
        try:
            yield
        finally:
            with self._status_lock:
                self._ingesting.pop(token, None)

    def ingest_status(self) -> str:
        with self._status_lock:
            names = [n for v in self._ingesting.values() for n in v]
        if not names:
            return ""
        return f"索引正在更新（正在导入 {', '.join(names)}）· the index is being updated (adding {', '.join(names)})"

    # ------------------------------------------------------------ Stop
    def cancel_event(self, session: str) -> threading.Event:
        ev = threading.Event()
        with self._status_lock:
            self._cancel[session or "-"] = ev
        return ev

    def cancel(self, session: str) -> None:
        with self._status_lock:
            ev = self._cancel.get(session or "-")
        if ev is not None:
            ev.set()

    # ------------------------------------------------------------ questions
    def pipeline_for(self, provider: str, model: str, base_url: str):
        """The shared pipeline, or a light copy with the chosen LLM model/base URL (same retriever)."""
        from ..pipeline import Pipeline

        model, base_url = (model or "").strip(), (base_url or "").strip()
        if not model and not base_url:
            return self.pipeline
        p = REGISTRY.get((provider or "").lower())
        # the Model / Base URL boxes set the provider's own options (ollama: host; llamacpp: model_path)
        over: dict[str, Any] = p.overrides(model=model, base_url=base_url, strict=False) if p is not None else {}
        if not over:
            return self.pipeline
        return Pipeline(self.settings.with_overrides(**over), retriever=self.retriever)

    def _check(self, question: str, provider: str) -> tuple[str, str]:
        q = (question or "").strip()
        if not q:
            raise ValueError("请输入问题 · please type a question")
        if len(q) > MAX_QUESTION:
            raise ValueError(f"问题太长 · question too long ({len(q)} characters; at most {MAX_QUESTION})")
        gen = self.retriever.generation()
        if not gen.chunks:
            raise ValueError(f"索引为空 · the index at {self.settings.index_dir} is empty: add replies in the documents tab")
        provider = (provider or self.settings.llm.provider or "extractive").lower()
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider '{provider}' (one of {', '.join(PROVIDERS)})")
        problem = provider_problem(provider)
        if problem:
            raise ProviderMissing(problem)
        return q, provider

    def ask(self, question: str, previous: list[str], cities, k, provider, model="", base_url="", on_token=None, on_event=None):
        """One question through the pipeline (follow-ups rewritten with `previous`). Returns rag.types.Answer."""
        q, provider = self._check(question, provider)
        rewritten = rewrite_followup(q, previous)
        pipe = self.pipeline_for(provider, model, base_url)
        ans = pipe.ask(rewritten, k=int(k) if k else None, cities=list(cities) or None if cities else None, provider=provider, on_token=on_token,
                       on_event=on_event)
        ans.question = q
        ans.rewritten_question = rewritten if rewritten != q else ""
        return ans

    def answer_turn(self, turn: Turn, previous: list[str], cities, k, provider, model="", base_url="", on_token=None, on_event=None) -> Turn:
        """Answer turn.question and fill the turn: the answer, the retrieved passages not cited, hints, suggestions."""
        cities = [c for c in (cities or []) if c]
        turn.cities = cities
        q, provider = self._check(turn.question, provider)
        turn.provider = provider
        k = int(k) if k else self.settings.retrieval.k
        if is_vague(q) and not cities and rewrite_followup(q, previous) == q:
            self._overview(turn, q, k)
        else:
            ans = self.ask(q, previous, cities, k, provider, model, base_url, on_token=on_token, on_event=on_event)
            turn.rewritten = ans.rewritten_question
            turn.answer = ans.to_dict()
            cited = {c.chunk_id for c in ans.citations}
            turn.retrieved = [self._hit_dict(h) for h in ans.hits[:k] if h.chunk.chunk_id not in cited]
            if cities and (ans.abstained or not ans.citations):
                self._filter_hint(turn, ans.rewritten_question or q, k)
            if not ans.citations or not ans.filters.get("cities"):
                miss = near_miss(q, self.cities())
                if miss:
                    fixed = q.replace(miss[0], miss[1], 1)
                    turn.hints.append({"kind": "didyoumean", "text": f"您是不是要问 {miss[1]}？ Did you mean {miss[1]}?", "action": "ask", "question": fixed})
            if ans.citations and not ans.abstained and not ans.filters.get("comparative"):
                turn.suggestions = self.followups(turn.citations)
        status = self.ingest_status()
        if status:
            a = turn.answer or {}
            tail = "：新上传的答复在导入完成前检索不到，完成后请再问一次。New replies are searchable once it has finished; ask again then."
            turn.hints.insert(0, {"kind": "indexing", "text": "⏳ " + status + tail, "strong": bool(a.get("abstained"))})
        turn.time = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return turn

    @staticmethod
    def _hit_dict(h) -> dict[str, Any]:
        c = h.chunk
        return {
            "rank": h.rank, "chunk_id": c.chunk_id, "doc_id": c.doc_id, "city": c.city, "title": c.title, "section": c.section,
            "issuer": c.issuer, "date": c.date, "text": c.text, "score": round(float(h.score), 4),
        }

    def _filter_hint(self, turn: Turn, question: str, k: int) -> None:
        """The settings' city filter found nothing: say so, and whether the other replies answer it."""
        flt = "、".join(turn.cities)
        named = [p for p, _, _ in find_places(question) if p not in turn.cities and p in self.cities()]
        try:
            alt = self.pipeline.ask(question, k=k, provider="extractive")
        except Exception:  # noqa: BLE001 - the hint is optional
            alt = None
        where = list(dict.fromkeys(c.city for c in (alt.citations if alt else []) if c.city))
        text = f"⚠ 城市筛选为 {flt}，筛选范围内未找到。The city filter ({flt}) is on and nothing in it answers this."
        if named:
            text += f" 问题提到的 {'、'.join(dict.fromkeys(named))} 不在筛选范围内。The question names {'、'.join(dict.fromkeys(named))}, outside the filter."
        if alt is not None and not alt.abstained and where:
            text += f" 全部答复中 {'、'.join(where)} 有相关内容。{'、'.join(where)} has matching passages."
            turn.hints.append({"kind": "filter", "text": text, "action": "unfilter"})
        else:
            turn.hints.append({"kind": "filter", "text": text + " 全部答复中也未找到。Nothing in the other replies either."})

    def _overview(self, turn: Turn, q: str, k: int) -> None:
        """A bare topic: one line per reply saying what it says on it, and three precise questions to ask."""
        res = self.retriever.search(q, k=max(k, 20))
        core = re.sub(r"[\s?？!！。.,，、]+", "", q)
        terms = [core, *res.query.terms]
        seen: dict[str, Any] = {}
        for h in res.hits:
            if h.chunk.doc_id in seen:
                continue
            sents = [s for s in re.findall(r"[^。；！？\n]+[。；！？]?", h.chunk.text) if s.strip()]
            best = next((s.strip() for s in sents if any(t and t in s for t in terms)), "")
            if best:
                seen[h.chunk.doc_id] = (h, best)
        lines, cits, sugg = [], [], []
        for n, (h, sent) in enumerate(list(seen.values())[:8], start=1):
            c = h.chunk
            lines.append(f"{c.city or c.doc_id}:{sent}[{n}]")
            cits.append({
                "n": n, "doc_id": c.doc_id, "city": c.city, "title": c.title, "section": c.section, "text": c.text,
                "score": round(float(h.score), 4), "issuer": c.issuer, "date": c.date, "quote": sent, "chunk_id": c.chunk_id,
            })
        if not cits:
            turn.answer = {"question": q, "answer": "资料中未找到能回答该问题的内容。", "abstained": True, "citations": [], "timings_ms": res.timings_ms,
                           "provider": "overview", "unsupported": [], "unmarked": [], "note": "", "rewritten_question": "", "filters": {}}
            return
        sugg.append(f"哪些城市在{core}方面有具体措施?")
        first = cits[0]
        sugg.append(f"{first['city']}在{core}方面做了哪些工作?")
        for c in cits:
            figs = figures(c["quote"])
            if figs:
                f = figs[0]
                what = "金额是多少" if "元" in f else "比例是多少" if re.search(r"[%％]|百分", f) else f"有多少{f[-1]}"
                sugg.append(f"{c['city']}{core}{what}?")
                break
        turn.overview = True
        turn.suggestions = list(dict.fromkeys(sugg))[:3]
        turn.answer = {
            "question": q, "answer": "\n".join(lines), "abstained": False, "citations": cits,
            "timings_ms": {"retrieve": res.timings_ms.get("total", 0.0), "total": res.timings_ms.get("total", 0.0)},
            "provider": "overview", "unsupported": [], "unmarked": [],
            "note": f"“{core}”是一个话题，不是一个问题：以下是每份答复关于它的一句话。A topic, not a question: one line from each reply that mentions it.",
            "rewritten_question": "", "filters": {"cities": [], "years": [], "comparative": False},
        }

    def followups(self, citations: list[dict]) -> list[str]:
        """Questions about the outline items next to the first cited one (after 首贷 … '续贷服务中心…')."""
        gen = self.generation()
        if gen is None or not citations:
            return []
        c = citations[0]
        rows = sorted(gen.rows_of(c.get("doc_id")), key=lambda r: gen.chunks[r].ordinal)
        chunks = [gen.chunks[r] for r in rows]
        pos = next((i for i, ch in enumerate(chunks) if ch.chunk_id == c.get("chunk_id")), None)
        if pos is None:
            return []
        here = chunks[pos]
        parent, mine = list(here.section_path[:-1]), (here.section_path[-1] if here.section_path else "")
        out: list[str] = []
        order = sorted(range(len(chunks)), key=lambda i: (abs(i - pos), i < pos))
        for i in order:
            ch = chunks[i]
            if not ch.section_path or list(ch.section_path[:-1]) != parent or ch.section_path[-1] == mine:
                continue
            label = item_label(ch.section_path[-1])
            if len(label) < 4 or any(label in q for q in out):
                continue
            city = ch.city or ""
            out.append(f"{city}{label}的具体数字是多少?" if figures(ch.text) else f"{city}{label}具体怎么做?")
            if len(out) >= 2:
                break
        return out

    # ------------------------------------------------------------ feedback
    def record_feedback(self, turn: Turn, rating: str, comment: str = "", fid: str = "") -> str:
        """Append one row to <index>/feedback.jsonl; a comment on a 👎 is a second row with the same id."""
        a = turn.answer or {}
        fid = fid or uuid.uuid4().hex[:12]
        row = {
            "id": fid,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "rating": rating,
            "comment": comment,
            "question": turn.question,
            "rewritten_question": turn.rewritten,
            "answer": a.get("answer", ""),
            "abstained": a.get("abstained", False),
            "provider": a.get("provider", ""),
            "filters": {"cities": turn.cities},
            "citations": [{k: c.get(k) for k in ("n", "doc_id", "chunk_id", "city", "title", "section", "quote")} for c in a.get("citations") or []],
        }
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with self._feedback_lock, open(self.index_dir / "feedback.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        return fid

    # ------------------------------------------------------------ documents
    @property
    def uploads_dir(self) -> Path:
        return self.index_dir / "uploads"

    @property
    def trash_dir(self) -> Path:
        return self.index_dir / "trash"

    def add_files(self, files: list[str], progress_cb: Callable | None = None) -> str:
        """Copy uploads under sanitised names into a fresh directory and ingest them. Returns a status message."""
        from ..ingest import IndexLocked, IngestError, Progress, ingest

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
            return "⚠ 没有导入任何文件 · nothing was ingested\n\n" + "\n".join(f"- {md_safe(p)}" for p in problems)

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
            with self.ingesting([p.name for p in copied]):
                rep = ingest([str(p) for p in copied], self.settings, progress=P())
        except IndexLocked as e:
            shutil.rmtree(dest, ignore_errors=True)
            return f"⚠ 索引正被另一个导入占用 · the index is locked by another ingest: {md_safe(str(e))}"
        except IngestError as e:
            shutil.rmtree(dest, ignore_errors=True)
            return f"⚠ 导入失败，索引未变 · ingest failed, the index is unchanged: {md_safe(str(e))}"
        except Exception as e:  # noqa: BLE001 - any failure leaves the previous generation current
            log.exception("ingest failed")
            shutil.rmtree(dest, ignore_errors=True)
            return f"⚠ 导入失败，索引未变 · ingest failed, the index is unchanged: {type(e).__name__}: {md_safe(str(e))}"
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
            lines.append("\n跳过 skipped:\n" + "\n".join(f"- {md_safe(p)}" for p in problems))
        return "\n".join(lines)

    def remove(self, doc_ids: list[str]) -> str:
        return self.remove_with_undo(doc_ids)[0]

    def remove_with_undo(self, doc_ids: list[str]) -> tuple[str, list[dict[str, str]]]:
        """Remove documents; an uploaded copy goes to <index>/trash/ (kept a day) so that `undo_remove` can put
        it back. Returns (message, undo records: doc_id, path, trash)."""
        from ..ingest import IndexLocked, IngestError, remove_documents

        doc_ids = [d for d in (doc_ids or []) if d]
        if not doc_ids:
            return "⚠ 请选择要删除的文档 · choose a document to remove", []
        gen = self.generation()
        paths = {d: gen.docs[d].path for d in doc_ids if gen is not None and d in gen.docs}
        try:
            rep = remove_documents(doc_ids, self.settings)
        except IndexLocked as e:
            return f"⚠ 索引正被另一个导入占用 · the index is locked by another ingest: {md_safe(str(e))}", []
        except IngestError as e:
            return f"⚠ {md_safe(str(e))}", []
        self._purge_trash()
        up = self.uploads_dir.resolve()
        undo: list[dict[str, str]] = []
        stamp = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        for d, p in paths.items():
            if d not in rep.removed:
                continue
            rec = {"doc_id": d, "path": str(p), "trash": ""}
            try:
                rp = Path(p).resolve()
                if up in rp.parents and rp.exists():  # an uploaded copy: into the trash, for undo
                    t = self.trash_dir / stamp / rp.parent.name / rp.name
                    t.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(rp), t)
                    rec["trash"] = str(t)
                    if rp.parent != up and not any(rp.parent.iterdir()):
                        rp.parent.rmdir()
            except OSError:
                pass
            undo.append(rec)
        msg = f"🗑 已删除 · removed {', '.join(rep.removed)} · {rep.chunks_total} chunks left"
        return msg, undo

    def undo_remove(self, undo: list[dict[str, str]]) -> str:
        """Put back what `remove_with_undo` removed (the uploaded copy from the trash, then ingest it again)."""
        from ..ingest import IndexLocked, IngestError, ingest

        paths, lost = [], []
        for rec in undo or []:
            p = Path(rec.get("path", ""))
            t = Path(rec["trash"]) if rec.get("trash") else None
            try:
                if t is not None and t.exists():
                    p.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(t), p)
                if p.exists():
                    paths.append(str(p))
                else:
                    lost.append(rec.get("doc_id", "?"))
            except OSError:
                lost.append(rec.get("doc_id", "?"))
        if not paths:
            return "⚠ 无法撤销：文件已不存在 · cannot undo: the files are gone" + (f" ({', '.join(lost)})" if lost else "")
        try:
            with self.ingesting([Path(p).name for p in paths]):
                rep = ingest(paths, self.settings)
        except IndexLocked as e:
            return f"⚠ 索引正被另一个导入占用 · the index is locked by another ingest: {md_safe(str(e))}"
        except IngestError as e:
            return f"⚠ 撤销失败 · undo failed: {md_safe(str(e))}"
        back = rep.added + rep.updated + rep.unchanged
        msg = f"↩ 已恢复 · restored {', '.join(back) or '—'} · {rep.chunks_total} chunks in the index"
        return msg + (f" · ⚠ not restored: {', '.join(lost)}" if lost else "")

    def _purge_trash(self) -> None:
        if not self.trash_dir.is_dir():
            return
        now = time.time()
        for d in self.trash_dir.iterdir():
            try:
                if now - d.stat().st_mtime > TRASH_KEEP_S:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass


ChatApp = ChatService  # the former name

__all__ = ["ChatService", "ChatApp", "safe_upload_name", "provider_problem", "provider_notes", "is_vague", "near_miss", "item_label", "readable", "md_safe", "PROVIDERS", "ALLOWED_UPLOAD"]
