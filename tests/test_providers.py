"""The provider registry (rag/providers.py): one table that the CLI, the configuration, eval and the chat read."""
from __future__ import annotations

import re
import tomllib
from dataclasses import fields

import pytest

from conftest import REPO, settings_for


def test_one_providers_list_derived_from_the_registry():
    from rag import llm, providers
    from rag.webapp import service

    assert providers.PROVIDERS == providers.names() == tuple(providers.REGISTRY)
    assert providers.PROVIDERS[0] == "extractive" and {"openai", "ollama", "llamacpp"} <= set(providers.PROVIDERS)
    assert service.PROVIDERS is providers.PROVIDERS  # the chat's list is the registry's
    assert llm.PROVIDERS == providers.LLM_PROVIDERS == tuple(n for n in providers.PROVIDERS if n != "extractive")
    assert llm.Backend is providers.Backend and llm.LLMError is providers.LLMError and llm.get_backend is providers.get_backend


def test_every_option_is_a_setting_with_its_environment_variable():
    from rag.config import ENV_MAP, LLMConfig
    from rag.providers import REGISTRY

    known = {f.name for f in fields(LLMConfig)}
    for p in REGISTRY.values():
        assert p.summary, p.name
        if p.uses_model:
            assert p.modules and p.make.startswith("make install-") and p.extra
        for o in p.options:
            assert o.field in known, (p.name, o.field)
            if o.env:
                assert ENV_MAP[o.env] == f"llm.{o.field}"
        inputs = [o.input for o in p.options if o.input]
        assert len(inputs) == len(set(inputs)), p.name  # one option per generic input
    extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for p in REGISTRY.values():
        if p.uses_model:
            assert p.extra in extras and re.search(rf"^{p.make.split()[1]}:", makefile, re.M), p.name


def test_generic_inputs_map_to_each_providers_own_options():
    from rag.providers import LLMError, get

    url = "http://10.1.2.3:11434"
    assert get("ollama").overrides(model="qwen2.5:3b", base_url=url) == {"llm.model": "qwen2.5:3b", "llm.host": url}
    assert get("openai").overrides(model="deepseek-chat", base_url="https://api.deepseek.com/v1") == {
        "llm.model": "deepseek-chat", "llm.base_url": "https://api.deepseek.com/v1"}  # fmt: skip
    assert get("llamacpp").overrides(model="qwen2.5-coder-1.5b") == {"llm.model_path": "qwen2.5-coder-1.5b"}
    assert get("OpenAI").name == "openai"
    with pytest.raises(LLMError, match="--base-url is not an option of the llamacpp provider"):
        get("llamacpp").overrides(base_url=url)
    assert get("llamacpp").overrides(base_url=url, strict=False) == {}  # the chat's box is ignored for it
    with pytest.raises(LLMError, match=r"unknown LLM provider 'gpt-9': choose extractive, openai, ollama, llamacpp"):
        get("gpt-9")


def test_ollama_uses_the_base_url_it_is_given(tmp_path):
    """The bug of issue 12: `--base-url` was dropped for ollama (its backend read only llm.host)."""
    pytest.importorskip("langchain_ollama")
    from rag.config import Settings
    from rag.providers import get

    url = "http://127.0.0.1:18434"
    s = Settings().with_overrides(**{"llm.provider": "ollama", **get("ollama").overrides(base_url=url)})
    backend = get("ollama").build(s)
    assert backend.chat.base_url == url and get("ollama").where(s) == url


def test_llamacpp_model_choice():
    from rag.config import LLMConfig, Settings
    from rag.providers import get

    p = get("llamacpp")
    assert p.model_name(Settings()) == LLMConfig.model_path == "qwen2.5-coder-1.5b"
    assert p.model_name(Settings().with_overrides(**{"llm.model_path": "qwen2.5-coder-0.5b"})) == "qwen2.5-coder-0.5b"
    # llm.model naming a GGUF or a bundled model (old configurations) counts when model_path is left alone
    assert p.model_name(Settings().with_overrides(**{"llm.model": "/m/x.gguf"})) == "/m/x.gguf"
    assert p.model_name(Settings().with_overrides(**{"llm.model": "gpt-4o"})) == "qwen2.5-coder-1.5b"
    assert p.model_name(Settings().with_overrides(**{"llm.model": "/m/x.gguf", "llm.model_path": "/m/y.gguf"})) == "/m/y.gguf"
    missing = Settings().with_overrides(**{"llm.model_path": "/nonexistent/m.gguf"})
    assert p.needs(missing) == ["model file not found: /nonexistent/m.gguf"]


def test_needs_say_what_is_missing(monkeypatch):
    from rag.config import Settings
    from rag.providers import get

    monkeypatch.delenv("RAG_TEST_NO_SUCH_KEY", raising=False)
    hosted = Settings().with_overrides(**{"llm.base_url": "https://api.deepseek.com/v1", "llm.api_key_env": "RAG_TEST_NO_SUCH_KEY"})
    assert get("openai").needs(hosted) == [
        "$RAG_TEST_NO_SUCH_KEY is not set: a hosted endpoint (https://api.deepseek.com/v1) needs its API key there (llm.api_key_env names the variable)"]
    local = hosted.with_overrides(**{"llm.base_url": "http://127.0.0.1:8080/v1"})
    assert get("openai").needs(local) == []
    monkeypatch.setenv("RAG_TEST_NO_SUCH_KEY", "sk-x")
    assert get("openai").needs(hosted) == []
    assert get("extractive").needs(hosted) == [] and get("extractive").problem() == ""


def test_config_rejects_an_unknown_provider(monkeypatch):
    from rag.config import ConfigError, load_settings

    monkeypatch.setenv("RAG_LLM", "gpt-9")
    with pytest.raises(ConfigError, match="unknown LLM provider 'gpt-9': choose extractive, openai, ollama, llamacpp"):
        load_settings()


@pytest.mark.parametrize("env, setting", [("RAG_INDEX_MERGE", "index.merge"), ("RAG_LLM_INSTRUCTIONS", "llm.instructions"), ("RAG_RANKING", "retrieval.ranking")])
def test_config_rejects_a_word_not_among_the_choices(monkeypatch, env, setting):
    from rag.config import CHOICES, ConfigError, load_settings

    monkeypatch.setenv(env, "sometimes")
    with pytest.raises(ConfigError, match=f"{setting} = 'sometimes' is not one of: {', '.join(CHOICES[setting])}"):
        load_settings()
    monkeypatch.setenv(env, CHOICES[setting][-1])
    load_settings()


def test_the_chat_maps_its_boxes_through_the_registry(bundled_index):
    from rag.webapp.service import ChatService

    svc = ChatService(settings_for(bundled_index))
    assert svc.pipeline_for("ollama", "", "http://127.0.0.1:18434").settings.llm.host == "http://127.0.0.1:18434"
    assert svc.pipeline_for("openai", "m", "http://127.0.0.1:8080/v1").settings.llm.base_url == "http://127.0.0.1:8080/v1"
    assert svc.pipeline_for("llamacpp", "/m/x.gguf", "http://ignored").settings.llm.model_path == "/m/x.gguf"
    assert svc.pipeline_for("llamacpp", "", "http://ignored") is svc.pipeline
    assert svc.pipeline_for("extractive", "", "") is svc.pipeline


def test_readme_table_is_the_registrys():
    from rag.providers import markdown_table

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README's provider table is out of date: paste `rag providers --markdown`"


def test_adding_a_provider_is_one_class(bundled_index):
    """A new provider is one class with @register; `ask` (Pipeline → llm_answer) and the chat then know it."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from rag.pipeline import Pipeline
    from rag.providers import PROVIDERS, Backend, Provider, estimate_tokens, get, names, register, unregister
    from rag.webapp.service import provider_notes

    text = "营口市对博士给予生活补贴[1]。"

    @register
    class Canned(Provider):
        name = "canned"
        summary = "a canned answer (test)"
        modules = ("langchain_core",)
        extra, make = "llm", "make install-llm"

        def build(self, settings):
            return Backend(self.name, GenericFakeChatModel(messages=iter([AIMessage(content=text)])), estimate_tokens, settings.llm.n_ctx, 64)

    try:
        assert "canned" in names() and "canned" not in PROVIDERS  # PROVIDERS: the built-in ones
        assert get("canned").name == "canned" and provider_notes("canned", settings_for(bundled_index)) == ""
        tokens: list[str] = []
        ans = Pipeline(settings_for(bundled_index)).ask("营口市对博士每月补贴多少?", provider="canned", on_token=tokens.append)
        assert "".join(tokens) == text  # the model was asked, and streamed
        assert ans.provider in ("canned", "extractive") and "unknown" not in ans.note
    finally:
        unregister("canned")
    assert "canned" not in names()
