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
from .english import drop_echoes, is_date, kept_originals, place_name, render_originals, translation_lines
from .providers import _LLAMAS, LLM_PROVIDERS, REGISTRY, Backend, LLMError, LLMFailure, get, get_backend, is_local, load_llama, reserve
from .retriever import Query
from .types import Answer, Citation, Hit
from .verify import REFUSAL_MARK, Verified, best_quote, cut_at_sentence, find_numbers, is_refusal, strip_markers, verify

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
    if template is not None and "{place}" in template:  # a translation's passage: the place in English (Wuhan (武汉市))
        values["place"] = _defuse(place_name(c.city) if c.city else "")
    lines = []
    for line in (template if template is not None else load_prompt("passage")).split("\n"):
        names = [m for m in re.findall(r"\{(\w+)\}", line) if m in values]
        if names and all(values[m] in ("", None) for m in names):
            continue  # a template line whose values are all empty ("发文单位：")
        lines.append(fill(line, **values))
    return "\n".join(lines)


def support_text(hit: Hit, text: str | None = None, date: bool = True) -> str:
    """What a citation of this passage can support: its metadata and full text (or `text`: the part of it the
    model was given to translate; a translation states no date of the reply's header: `date=False`)."""
    c = hit.chunk
    head = (c.city, c.issuer, c.title and f"《{c.title}》", c.section, c.date if date else "")
    return " ".join(x for x in head if x) + "\n" + (c.text if text is None else text)


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


def _expected_figures(ans: Answer) -> list[str]:
    """The figures the extractive answer states: those of the sentences it quoted (the whole answer without quotes)."""
    quotes = [c.quote for c in ans.citations if c.quote]
    text = strip_markers(" ".join(quotes) if quotes else ans.answer)
    return [x.surface for x in find_numbers(text) if not is_date(x, text)]


def build_prompt(query: Query, hits: list[Hit], count: Callable[[str], int], n_ctx: int, reserve: int,
                 texts: list[str] | None = None, structured: bool = False, instructions: str = "user",
                 translate: bool = False) -> Prompt:
    """The prompt for `hits` (best first) that fits n_ctx with `reserve` tokens left for the answer.

    `texts`: what the model reads of each hit (rag.grounding's trimmed passages; default the whole chunk).
    `structured`: the JSON answer format is asked for (prompts/structured.txt is appended); an English
    question gets prompts/english.txt. `instructions` ([llm] instructions): those go after the passages
    ("user") or after the system prompt ("system": the same prefix for every question of a kind, which the
    model server does not read again). `translate`: an English question whose passages are the extractive answer's
    quotes (rag.grounding.quotes, figures already in English: rag.english.protect) gets prompts/translation.txt,
    which asks for those sentences in English and does not state the question (a model shown the question
    translated the question)."""
    refusal = load_prompt("refusal").strip()
    system = fill(load_prompt("system"), refusal=refusal)
    extra = []
    if translate:
        template = fill(load_prompt("translation"), format=load_prompt("translation_structured" if structured else "translation_text"))
        passage_template = load_prompt("translation_passage")
    else:
        template = load_prompt("comparative" if query.comparative else "answer")
        passage_template = load_prompt("passage")
        if structured:
            extra.append(load_prompt("structured"))
            if query.comparative:
                extra.append(load_prompt("structured_comparative"))
        if getattr(query, "language", "zh") == "en":
            extra.append(load_prompt("english"))
    if extra and instructions == "system":
        system = system + "\n\n" + "\n".join(extra)
    elif extra:
        head, sep, tail = template.rpartition("回答：")
        template = (head.rstrip() + "\n" + "\n".join(extra) + "\n\n" + sep + tail) if sep else template + "\n" + "\n".join(extra)
    secrets = [system, fill(template, passages="", question="", refusal="")]
    budget = n_ctx - reserve - (32 + n_ctx // 32)  # chat template tokens and a safety margin
    system_tokens = count(system)
    given = list(texts) if texts is not None else [h.chunk.text for h in hits]

    def render(hs: list[Hit], texts: list[str]) -> tuple[str, int]:
        passages = "\n\n".join(format_passage(i + 1, h, t, passage_template) for i, (h, t) in enumerate(zip(hs, texts)))
        user = fill(template, passages=passages, question=_defuse(query.text.strip()), refusal=refusal)
        return user, system_tokens + count(user)

    keep = list(hits)
    while keep:
        texts = given[: len(keep)]
        user, tokens = render(keep, texts)
        if tokens <= budget:
            return Prompt(system, user, keep, texts, tokens, len(hits) - len(keep), False, secrets, refusal)
        if len(keep) == 1:
            cut = cut_at_sentence(given[0], lambda t: render(keep, [t])[1] <= budget)
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


def generate(backend: Backend, prompt: Prompt, on_token: Callable[[str], None] | None, timeout: float,
             extra: dict | None = None, stats: dict | None = None) -> str:
    """Stream the answer, calling on_token for every piece; returns the whole text.

    `extra`: more keyword arguments for the model call (structured output); `stats` receives
    ``first_token_at`` (time.perf_counter() of the first piece)."""
    deadline = time.monotonic() + timeout if timeout and timeout > 0 else None
    parts: list[str] = []
    messages = prompt.messages(backend.merge_system)
    lock = backend.lock or threading.Lock()
    with lock:
        stream = backend.chat.stream(messages, **{**backend.call_kwargs, **(extra or {})})
        try:
            for chunk in stream:
                text = _chunk_text(chunk)
                if text:
                    if not parts and stats is not None:
                        stats["first_token_at"] = time.perf_counter()
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
def model_label(backend: Backend | None, settings: Settings, provider: str) -> str:
    """The model's short name for the status line and the eval table (a GGUF's file name)."""
    chat = getattr(backend, "chat", None)
    path = getattr(chat, "model_path", None) or settings.llm.model_path
    if provider == "llamacpp" and path:
        return Path(str(path)).name
    name = getattr(chat, "model_name", None) or getattr(chat, "model", None) or settings.llm.model or DEFAULT_MODELS.get(provider, "")
    return str(name or provider)


def translating(settings: Settings, query: Query, fallback: Answer) -> bool:
    """[llm] english = "translate": an English question the extractive answerer answered with quotes is put to the
    model as those quotes, to be translated (the facts are the answerer's, the English is the model's)."""
    return (getattr(query, "language", "zh") == "en" and settings.llm.english == "translate" and not fallback.abstained
            and any(c.quote for c in fallback.citations))


def _select(settings: Settings, query: Query, hits: list[Hit], fallback: Answer):
    from .grounding import Selected, quotes, select

    cfg = settings.llm
    if translating(settings, query, fallback):
        return quotes(hits, fallback)
    if (cfg.context or "plan").lower() == "chunks":
        return Selected(list(hits), [h.chunk.text for h in hits])
    return select(query, hits, fallback, limit=cfg.passages, chars=cfg.passage_chars)


def _structured_refused(e: BaseException) -> bool:
    """The server did not accept the structured-output request (an old server, another dialect)."""
    status = getattr(e, "status_code", 0) or 0
    text = str(e).lower()
    return 400 <= status < 500 and status not in (401, 403) and any(w in text for w in ("response_format", "json", "schema", "grammar", "format"))


def _emit(on_event: Callable[[dict], None] | None, **event: Any) -> None:
    if on_event is not None:
        on_event(event)


def llm_answer(
    settings: Settings,
    provider: str,
    query: Query,
    hits: list[Hit],
    fallback: Answer,
    on_token: Callable[[str], None] | None = None,
    on_event: Callable[[dict], None] | None = None,
    started: float | None = None,
) -> Answer:
    """An answer written by `provider` from the passages the plan selected, checked by the gate (rag.gate);
    `fallback` (the extractive answer) when the model fails or its answer does not pass.

    `on_event` receives {"stage": "generate", "model": …}, {"stage": "first_token", "ms": …} and
    {"stage": "verify"}; `started` (time.perf_counter() when the question came) dates the first token."""
    from . import gate as gates
    from .structured import StreamRenderer, answer_schema, mode_for, parse, render, request_kwargs, translation_schema

    provider = check_provider(provider)
    cfg = settings.llm
    if fallback.abstained and (not hits or query.unknown_places or query.kind == "assistant" or not cfg.ask_when_refused):
        # nothing retrieved / a place we have no reply about / the answerer's decision (learned and validated on
        # held-out places) is that the passages do not answer: the model is not asked to overrule it
        return fallback
    backend: Backend | None = None
    english = getattr(query, "language", "zh") == "en"
    stats: dict[str, float] = {}
    info: dict[str, Any] = {"provider": provider}
    try:
        backend = get_backend(settings, provider)
        info["model"] = model_label(backend, settings, provider)
        sel = _select(settings, query, hits, fallback)
        translate = translating(settings, query, fallback)
        if translate:
            info["task"] = "translate"
        local = provider != "openai" or bool(cfg.base_url and _is_local(cfg.base_url))
        mode = mode_for(provider, cfg.structured, cfg.base_url, local=local)
        # a sentence (or a long sentence's clauses) a line, the figures already in English
        given = [translation_lines(t, cfg.translate_line_chars) for t in sel.texts] if translate else sel.texts
        prompt = build_prompt(query, sel.hits, backend.count_tokens, backend.n_ctx, backend.max_tokens, texts=given, structured=bool(mode),
                              instructions=cfg.instructions, translate=translate)
        _emit(on_event, stage="generate", model=info["model"], passages=len(prompt.hits))
        t_gen = time.perf_counter()

        def tokens_out(piece: str, _r=[None]) -> None:  # noqa: B006 - one renderer per call
            if "first_token_at" in stats and "first" not in info:
                info["first"] = True
                _emit(on_event, stage="first_token", ms=round((stats["first_token_at"] - (started or t_gen)) * 1000, 1))
            if on_token is None:
                return
            if mode:
                if _r[0] is None:
                    _r[0] = StreamRenderer(prompt.refusal, query.comparative, english)
                piece = _r[0].feed(piece)
            if piece:
                on_token(piece)

        try:
            if translate and mode in ("json_object", "ollama"):  # one English sentence per quoted sentence, its citation fixed
                schema = translation_schema([n for n, t in enumerate(prompt.texts, 1) for line in t.split("\n") if line.strip()])
            else:
                schema = answer_schema(len(prompt.hits), english=english)
            raw = generate(backend, prompt, tokens_out, cfg.timeout, extra=request_kwargs(mode, schema, backend.chat), stats=stats)
        except Exception as e:
            if not mode or not _structured_refused(e):
                raise
            mode = ""  # the server refused the structured request: ask again for plain text
            prompt = build_prompt(query, sel.hits, backend.count_tokens, backend.n_ctx, backend.max_tokens, texts=given, instructions=cfg.instructions,
                                  translate=translate)
            raw = generate(backend, prompt, tokens_out, cfg.timeout, stats=stats)
    except LLMError:
        raise
    except Exception as e:  # any failure of the model: the extractive answer, with the reason
        ans = _fallback(fallback, provider, describe_error(e, settings, provider, backend.secret if backend else ""))
        info.pop("first", None)
        ans.llm = {**info, "error": ans.note, "shown": "extractive"}
        return ans

    _emit(on_event, stage="verify")
    st = parse(raw)
    text = render(st, prompt.refusal, query.comparative, english) if st is not None else _clean_output(raw)
    if st is None:
        text = re.sub(r"\n{2,}", "\n", text)
    if translate:  # a translation is checked against the (unprotected) sentences it translates, not the rest of the passage
        passages = [support_text(h, t, date=False) for h, t in zip(prompt.hits, sel.texts)]
    else:
        passages = [support_text(h) for h in prompt.hits]
    rendered: list = []
    if english:  # the cited passages' Chinese figures beside the English ones, money re-rendered from them
        text, rendered = render_originals(text, passages)
        text = drop_echoes(text)  # "470 (470名) (470 people)": the model's own English bracket after the original goes
    allowed = [COMPARATIVE_REFUSAL, REFUSAL_MARK]
    verdict = gates.check(gates.GateInput(
        text=text, passages=passages, refusal=prompt.refusal, secrets=prompt.secrets, allowed=allowed,
        unknown_places=list(query.unknown_places), extractive_abstained=fallback.abstained, language=getattr(query, "language", "zh"),
        asks_figure=any(p.asks_number for p in (query.parts or [])), question=query.text, terms=list(getattr(query, "terms", []) or []),
        asked_units=[p.unit for p in (query.parts or []) if p.asks_number and p.unit],
        expected=[] if fallback.abstained else _expected_figures(fallback),
        min_expected=cfg.gate_figures,
        kept=[k for t in prompt.texts for k in kept_originals(t)] if translate else [],
    ))
    info.update({
        "text": text, "structured": (mode or "") if st is not None else "", "passages": len(prompt.hits), "gate": verdict.to_dict(),
        "generate_ms": round((time.perf_counter() - t_gen) * 1000, 1),
    })
    if rendered:
        info["figures"] = [r.to_dict() for r in rendered]
    if "first_token_at" in stats:
        info["first_token_ms"] = round((stats["first_token_at"] - (started or t_gen)) * 1000, 1)
    info.pop("first", None)
    if st is not None and not st.complete:
        info["cut_off"] = True  # the JSON ended early (max_tokens): read as far as it went
    if cfg.gate and not verdict.passed:
        ans = replace(fallback, note=f"LLM ({provider}) answer not used: {verdict.reason} — extractive answer shown")
        ans.llm = {**info, "shown": "extractive"}
        return ans
    if fallback.abstained and (st is not None and st.refusal or is_refusal(strip_markers(text), prompt.refusal)):
        ans = replace(fallback, note=f"LLM ({provider}) found no answer either")  # one refusal, the answerer's
        ans.llm = {**info, "shown": "extractive"}
        return ans
    if not re.search(r"\w", text):  # nothing, or only symbols
        ans = _fallback(fallback, provider, "empty answer")
        ans.llm = {**info, "shown": "extractive"}
        return ans
    v = verify(text, passages, secrets=prompt.secrets, refusal=prompt.refusal, allowed=allowed)
    if v.empty:
        ans = _fallback(fallback, provider, "the answer only repeated its instructions" if v.leaked else "empty answer")
        ans.llm = {**info, "shown": "extractive"}
        return ans
    ans = _to_answer(query, prompt, v, provider, fallback)
    if translate and cfg.translation_originals:  # the sentences translated, verbatim, under the translation
        originals = [(new_n, sel.texts[old_n - 1]) for new_n, old_n in enumerate(v.cited, start=1) if old_n <= len(sel.texts)]
        for c, (_, quote) in zip(ans.citations, originals):
            c.quote = quote
        ans.answer += "\n\n" + ORIGINALS_HEADING + "\n" + "\n".join(f"{q}[{n}]" for n, q in originals)
    rescaled = [r for r in rendered if r.kind == "rescaled"]
    if rescaled:  # the reader is told which English figures are the passage's, not the model's
        fixed = "; ".join(f"{r.before} → {r.after}" for r in rescaled[:3])
        ans.note = "; ".join(x for x in (ans.note, f"{len(rescaled)} English figure(s) rewritten from the cited Chinese figure: {fixed}") if x)
    ans.llm = {**info, "shown": "llm"}
    return ans


ORIGINALS_HEADING = "原文 (Chinese original):"


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
        plan=fallback.plan,
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
