"""Stage 6b: answers written by an LLM from the retrieved passages, verified, with the extractive answer
as the safety net.

Providers (LangChain chat models):

The providers (openai, ollama, llamacpp …), their options and how each builds its LangChain chat model are
one registry, rag/providers.py; the bundled local models are rag/models.py.

The prompts are the files in ``prompts/`` (or $RAG_PROMPTS_DIR), read at every question. The numbered
passages are wrapped as data (``<passage id=n>``) and fitted into ``llm.n_ctx`` (lowest-ranked passages
dropped first, a lone long passage cut at a sentence end and marked …). The model's answer is checked by
``rag.verify`` (citation markers, unmarked sentences, numbers, repeated instructions). Any failure of the
model — connection refused, timeout, HTTP error, empty output, missing model file — returns the
extractive answer with a one-line ``note``; an unknown provider raises ``LLMError``.
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from .config import PROMPTS_DIR, Settings
from .providers import _LLAMAS, LLM_PROVIDERS, REGISTRY, Backend, LLMError, LLMFailure, get, get_backend, is_local, load_llama, reserve
from .retriever import Query
from .types import Answer, Citation, Hit
from .verify import REFUSAL_MARK, Verified, best_quote, cut_at_sentence, verify

PROVIDERS = LLM_PROVIDERS  # the providers that use a model (rag.providers.PROVIDERS also has extractive)
COMPARATIVE_REFUSAL = "资料中未找到相关内容"


def check_provider(name: str | None) -> str:
    """The name of a provider that uses a model; LLMError naming the choices otherwise."""
    p = get(name)
    if not p.uses_model:
        raise LLMError(f"the {p.name} provider uses no model: choose {', '.join(LLM_PROVIDERS)}")
    return p.name


# ------------------------------------------------------------------ prompts
def prompts_dir() -> Path:
    return Path(os.environ.get("RAG_PROMPTS_DIR") or PROMPTS_DIR)


def load_prompt(name: str) -> str:
    """prompts/<name>.txt (or .md), read fresh each time so edits apply at once."""
    d = prompts_dir()
    for ext in (".txt", ".md"):
        p = d / f"{name}{ext}"
        if p.is_file():
            return p.read_text(encoding="utf-8").strip("\n")
    raise LLMError(f"prompt file missing: {d / (name + '.txt')}")


def fill(template: str, **values: Any) -> str:
    """Replace {name} placeholders we know; leave every other brace alone (no escaping needed)."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


_TAG = re.compile(r"<\s*(/?)\s*passage", re.I)


def _defuse(text: str) -> str:
    """Passage text must not be able to close (or open) the <passage> wrapper."""
    return _TAG.sub(lambda m: f"‹{m.group(1)}passage", text or "")


def format_passage(n: int, hit: Hit, text: str | None = None, template: str | None = None) -> str:
    """One numbered passage as data, from prompts/passage.txt (or `template`)."""
    c = hit.chunk
    values = {
        "n": n,
        "city": _defuse(c.city),
        "issuer": _defuse(c.issuer),
        "title": _defuse(f"《{c.title}》" if c.title else ""),
        "section": _defuse(c.section),
        "date": _defuse(c.date),
        "text": _defuse(c.text if text is None else text),
    }
    lines = []
    for line in (template if template is not None else load_prompt("passage")).split("\n"):
        names = [m for m in re.findall(r"\{(\w+)\}", line) if m in values]
        if names and all(values[m] in ("", None) for m in names):
            continue  # a template line whose values are all empty ("发文单位：")
        lines.append(fill(line, **values))
    return "\n".join(lines)


def support_text(hit: Hit) -> str:
    """What a citation of this passage can support: its metadata and full text."""
    c = hit.chunk
    return " ".join(x for x in (c.city, c.issuer, c.title and f"《{c.title}》", c.section, c.date) if x) + "\n" + c.text


@dataclass
class Prompt:
    system: str
    user: str
    hits: list[Hit]  # passages in the prompt, [n] = hits[n-1]
    texts: list[str]  # their text as given to the model (the last one may be cut)
    tokens: int
    dropped: int = 0  # passages left out to fit the window
    truncated: bool = False
    secrets: list[str] = field(default_factory=list)  # instruction texts the answer must not repeat
    refusal: str = ""

    def messages(self, merge_system: bool = False) -> list:
        from langchain_core.messages import HumanMessage, SystemMessage

        if merge_system:  # chat formats without a system role (gemma)
            return [HumanMessage(content=f"{self.system}\n\n{self.user}")]
        return [SystemMessage(content=self.system), HumanMessage(content=self.user)]


def estimate_tokens(text: str) -> int:
    """A conservative token count without a tokenizer: 1 per CJK character, digit or symbol, words/0.75."""
    n = 0.0
    for m in re.finditer(r"[A-Za-z]+|\S", text):
        tok = m.group(0)
        n += (max(1, (len(tok) + 5) // 6) / 0.75) if tok[0].isascii() and tok[0].isalpha() else 1
    return int(n) + 1


class ContextTooSmall(LLMFailure):
    pass


def build_prompt(query: Query, hits: list[Hit], count: Callable[[str], int], n_ctx: int, reserve: int) -> Prompt:
    """The prompt for `hits` (best first) that fits n_ctx with `reserve` tokens left for the answer."""
    refusal = load_prompt("refusal").strip()
    system = fill(load_prompt("system"), refusal=refusal)
    template = load_prompt("comparative" if query.comparative else "answer")
    passage_template = load_prompt("passage")
    secrets = [system, fill(template, passages="", question="", refusal="")]
    budget = n_ctx - reserve - (32 + n_ctx // 32)  # chat template tokens and a safety margin
    system_tokens = count(system)

    def render(hs: list[Hit], texts: list[str]) -> tuple[str, int]:
        passages = "\n\n".join(format_passage(i + 1, h, t, passage_template) for i, (h, t) in enumerate(zip(hs, texts)))
        user = fill(template, passages=passages, question=_defuse(query.text.strip()), refusal=refusal)
        return user, system_tokens + count(user)

    keep = list(hits)
    while keep:
        texts = [h.chunk.text for h in keep]
        user, tokens = render(keep, texts)
        if tokens <= budget:
            return Prompt(system, user, keep, texts, tokens, len(hits) - len(keep), False, secrets, refusal)
        if len(keep) == 1:
            cut = cut_at_sentence(keep[0].chunk.text, lambda t: render(keep, [t])[1] <= budget)
            if cut is None:
                break
            user, tokens = render(keep, [cut])
            return Prompt(system, user, keep, [cut], tokens, len(hits) - 1, True, secrets, refusal)
        keep.pop()  # the lowest-ranked passage goes first
    raise ContextTooSmall(f"context window too small (n_ctx={n_ctx}) for the instructions and one sentence of a passage")


# ------------------------------------------------------------------ backends
# The providers and how they build their chat models live in rag/providers.py (one registry); these names
# stay importable from here.
DEFAULT_MODELS = {n: p.default_model for n, p in REGISTRY.items() if p.default_model}
_is_local = is_local
_reserve = reserve
_load_llama = load_llama


def _openai_backend(settings: Settings) -> Backend:
    return REGISTRY["openai"].build(settings)


def _ollama_backend(settings: Settings) -> Backend:
    return REGISTRY["ollama"].build(settings)


def _llamacpp_backend(settings: Settings) -> Backend:
    return REGISTRY["llamacpp"].build(settings)


def default_model_path() -> Path:
    """The assembled GGUF of the default bundled model ([llm] model_path, `rag models`)."""
    from . import models

    try:
        return models.assemble(models.DEFAULT)
    except models.ModelError as e:
        raise LLMFailure(str(e)) from None


def model_path_for(settings: Settings) -> Path:
    """The GGUF the llamacpp provider loads for these settings (a bundled model is assembled first)."""
    return REGISTRY["llamacpp"].model_path(settings)


# ------------------------------------------------------------------ generation
class _Timeout(LLMFailure):
    pass


def _chunk_text(chunk: Any) -> str:
    content = getattr(chunk, "content", chunk)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content or "")


def generate(backend: Backend, prompt: Prompt, on_token: Callable[[str], None] | None, timeout: float) -> str:
    """Stream the answer, calling on_token for every piece; returns the whole text."""
    deadline = time.monotonic() + timeout if timeout and timeout > 0 else None
    parts: list[str] = []
    messages = prompt.messages(backend.merge_system)
    lock = backend.lock or threading.Lock()
    with lock:
        stream = backend.chat.stream(messages, **backend.call_kwargs)
        try:
            for chunk in stream:
                text = _chunk_text(chunk)
                if text:
                    parts.append(text)
                    if on_token is not None:
                        on_token(text)
                if deadline is not None and time.monotonic() > deadline:
                    raise _Timeout(f"timed out after {timeout:g} s")
                if "\n" in text and _looping("".join(parts)):
                    break  # a small model repeating one line: stop early, the repeats are dropped below
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
    return "".join(parts)


_REPEATS = 6


def _looping(text: str) -> bool:
    """The last _REPEATS complete lines are one and the same line."""
    lines = [x.strip() for x in text.split("\n")[:-1]]
    lines = [x for x in lines if x]
    return len(lines) >= _REPEATS and len(set(lines[-_REPEATS:])) == 1


def _clean_output(text: str) -> str:
    text = re.sub(r"<think>.*?(</think>|$)", "", text, flags=re.S)  # reasoning models
    text = re.sub(r"<(end_of_turn|start_of_turn|eos|\|im_end\|)>.*", "", text, flags=re.S)
    text = re.sub(r"</?\s*(passage|p|br|div|span)\b[^>]*>", "", text, flags=re.I)  # echoed wrappers, stray HTML
    out: list[str] = []
    for line in text.split("\n"):  # a line repeated over and over counts once
        if line.strip() and out and line.strip() == out[-1].strip():
            continue
        out.append(line)
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(out))
    return text.strip()


def describe_error(e: BaseException, settings: Settings, provider: str, secret: str = "") -> str:
    """One short line saying why the model failed (never a traceback, never the API key)."""
    chain: list[BaseException] = []
    x: BaseException | None = e
    while x is not None and len(chain) < 8 and x not in chain:
        chain.append(x)
        x = x.__cause__ or x.__context__
    names = {b.__name__ for c in chain for b in type(c).__mro__}
    text = " | ".join(str(c) for c in chain)
    where = REGISTRY[provider].where(settings) if provider in REGISTRY else ""
    if isinstance(e, LLMFailure):
        msg = str(e)
    elif "ConnectionRefusedError" in names or "Connection refused" in text or "Errno 111" in text:
        msg = f"connection refused ({where})" if where else "connection refused"
    elif names & {"APITimeoutError", "TimeoutException", "ReadTimeout", "ConnectTimeout", "TimeoutError"} or "timed out" in text.lower():
        msg = f"timed out after {settings.llm.timeout:g} s"
    elif getattr(e, "status_code", None):
        msg = f"HTTP {e.status_code}: {_http_detail(e, settings, provider)}"
    elif names & {"RemoteProtocolError", "ReadError", "WriteError", "ConnectionResetError", "BrokenPipeError", "IncompleteRead"}:
        msg = "connection lost while answering"
    elif names & {"ConnectError", "APIConnectionError", "ConnectionError"}:
        msg = f"cannot connect ({where})" if where else "cannot connect"
    elif isinstance(e, FileNotFoundError):
        msg = f"model file not found: {e.filename or e}"
    else:
        first = (str(e).strip().splitlines() or [""])[0]
        msg = f"{type(e).__name__}: {first}" if first else type(e).__name__
    if secret:
        msg = msg.replace(secret, "***")
    msg = re.sub(r"\s+", " ", msg).strip()
    return msg if len(msg) <= 200 else msg[:199] + "…"


def _http_detail(e: BaseException, settings: Settings, provider: str) -> str:
    status = getattr(e, "status_code", 0)
    if status in (401, 403):  # servers echo parts of the key in these messages: say nothing of it
        return f"authentication failed (check the key in ${settings.llm.api_key_env})" if provider == "openai" else "authentication failed"
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        detail = err.get("message") if isinstance(err, dict) else err
        if detail:
            return str(detail)
    detail = getattr(e, "error", None) or getattr(e, "message", None) or str(e)
    return re.sub(r"^Error code: \d+\s*-?\s*", "", str(detail)) or "error"


def _fallback(fallback: Answer, provider: str, reason: str) -> Answer:
    return replace(fallback, note=f"LLM ({provider}) failed: {reason} — extractive answer shown")


# ------------------------------------------------------------------ answer
def llm_answer(
    settings: Settings,
    provider: str,
    query: Query,
    hits: list[Hit],
    fallback: Answer,
    on_token: Callable[[str], None] | None = None,
) -> Answer:
    """An answer written by `provider` from `hits`, verified; `fallback` (the extractive answer) on failure."""
    provider = check_provider(provider)
    if fallback.abstained and (not hits or query.unknown_places):
        return fallback  # nothing retrieved / a place we have no reply about: nothing to ask the model
    backend: Backend | None = None
    try:
        backend = get_backend(settings, provider)
        prompt = build_prompt(query, hits, backend.count_tokens, backend.n_ctx, backend.max_tokens)
        raw = generate(backend, prompt, on_token, settings.llm.timeout)
    except LLMError:
        raise
    except Exception as e:  # any failure of the model: the extractive answer, with the reason
        return _fallback(fallback, provider, describe_error(e, settings, provider, backend.secret if backend else ""))

    text = _clean_output(raw)
    if not re.search(r"\w", text):  # nothing, or only symbols
        return _fallback(fallback, provider, "empty answer")
    passages = [support_text(h) for h in prompt.hits]
    v = verify(text, passages, secrets=prompt.secrets, refusal=prompt.refusal, allowed=[COMPARATIVE_REFUSAL, REFUSAL_MARK])
    if v.empty:
        return _fallback(fallback, provider, "the answer only repeated its instructions" if v.leaked else "empty answer")
    return _to_answer(query, prompt, v, provider, fallback)


def _to_answer(query: Query, prompt: Prompt, v: Verified, provider: str, fallback: Answer) -> Answer:
    citations: list[Citation] = []
    for new_n, old_n in enumerate(v.cited, start=1):
        h = prompt.hits[old_n - 1]
        c = h.chunk
        quotes = [q for q in (best_quote(s, c.text) for s in v.sentences.get(new_n, [])) if q]
        citations.append(
            Citation(
                n=new_n,
                doc_id=c.doc_id,
                city=c.city,
                title=c.title,
                section=c.section,
                text=c.text,
                score=round(h.score, 4),
                issuer=c.issuer,
                date=c.date,
                quote="\n".join(dict.fromkeys(quotes)),
                chunk_id=c.chunk_id,
            )
        )
    notes = []
    if v.leaked:
        notes.append(f"{len(v.leaked)} sentence(s) repeating the instructions removed")
    if not v.cited and not v.refusal:
        notes.append("the model cited no passage")
    if prompt.dropped or prompt.truncated:
        cut = " (the last one cut at a sentence end)" if prompt.truncated else ""
        notes.append(f"{len(prompt.hits)} of {len(prompt.hits) + prompt.dropped} passages fit the context window{cut}")
    return Answer(
        question=query.text,
        answer=v.text,
        abstained=v.refusal,
        citations=citations,
        provider=provider,
        unsupported=v.unsupported,
        unmarked=v.unmarked,
        note="; ".join(notes),
        rewritten_question=fallback.rewritten_question,
    )


__all__ = [
    "llm_answer",
    "Backend",
    "model_path_for",
    "DEFAULT_MODELS",
    "_LLAMAS",
    "LLMError",
    "LLMFailure",
    "PROVIDERS",
    "check_provider",
    "build_prompt",
    "estimate_tokens",
    "get_backend",
    "default_model_path",
    "load_prompt",
    "fill",
    "format_passage",
    "describe_error",
]
