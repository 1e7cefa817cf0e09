"""Structured output for LLM answers: a JSON schema of cited sentences or a refusal, how each backend is
asked for it, and how the JSON is rendered to the usual text with [n] markers (also while it streams).

The schema (`answer_schema(n)` for a prompt with n passages)::

    {"refusal": false, "sentences": [{"text": "…", "citations": [1, 2]}, …]}

`citations` items are an enum of the passage numbers 1..n and at least one is required, so a constrained
backend cannot cite a passage that is not in the prompt; `sentences` has at most `MAX_SENTENCES` items, which
also ends a repetition loop. How it is requested (`request_kwargs`):

* ``llamacpp`` (in-process llama-cpp-python): ``response_format={"type": "json_object", "schema": …}`` —
  llama-cpp-python turns the schema into a GBNF grammar that constrains sampling;
* ``openai`` against a local server (llama_cpp.server, llama.cpp's llama-server): the same ``json_object``
  + ``schema`` in the request body; against a hosted endpoint: OpenAI's
  ``{"type": "json_schema", "json_schema": {"name", "strict": true, "schema"}}``;
* ``ollama``: ``format=<schema>`` (Ollama's structured outputs);
* anything else, or ``[llm] structured = "off"``: plain text with [n] markers, parsed as before.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .verify import sentence_spans

MAX_SENTENCES = 8
# An English answer's sentence: no Chinese characters except inside brackets, where the Chinese original of a
# figure goes ("CNY 2,000 per month (每月2000元)"); no quote, backslash or control character (the text is a JSON
# string the grammar writes raw). A grammar-constrained backend cannot leave English.
ENGLISH_TEXT = r'^[^"\\\x00-\x1f\u3000-\u9fff\uff00-\uffef()]*(\([^"\\\x00-\x1f()（）]*\)[^"\\\x00-\x1f\u3000-\u9fff\uff00-\uffef()]*)*$'


def answer_schema(n_passages: int, max_sentences: int = MAX_SENTENCES, english: bool = False) -> dict[str, Any]:
    """`english`: each sentence's text must match ENGLISH_TEXT (Chinese only inside brackets)."""
    nums = list(range(1, max(1, n_passages) + 1))
    text: dict[str, Any] = {"type": "string"}  # no maxLength: llama.cpp would unroll it into a 300-deep grammar
    if english:
        text["pattern"] = ENGLISH_TEXT
    return {
        "type": "object",
        "properties": {
            "refusal": {"type": "boolean"},
            "sentences": {
                "type": "array",
                "maxItems": max_sentences,
                "items": {
                    "type": "object",
                    "properties": {
                        "text": text,
                        "citations": {"type": "array", "items": {"type": "integer", "enum": nums}, "minItems": 1, "maxItems": 3},
                    },
                    "required": ["text", "citations"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["refusal", "sentences"],
        "additionalProperties": False,
    }


def grammar_schema(n_passages: int, max_sentences: int = MAX_SENTENCES, english: bool = False) -> dict[str, Any]:
    """The same answer for a grammar-constrained backend (llama.cpp, Ollama): either a refusal with no sentences,
    or at least one sentence — a small model otherwise answers {"refusal": false, "sentences": []}."""
    base = answer_schema(n_passages, max_sentences, english)
    answer = json.loads(json.dumps(base))
    answer["properties"]["refusal"] = {"const": False}
    answer["properties"]["sentences"]["minItems"] = 1
    answer["properties"]["sentences"]["items"]["properties"]["text"]["minLength"] = 1
    refusal = {"type": "object", "properties": {"refusal": {"const": True}, "sentences": {"type": "array", "maxItems": 0}},
               "required": ["refusal", "sentences"], "additionalProperties": False}
    return {"oneOf": [answer, refusal]}


def translation_schema(passage_of: list[int]) -> dict[str, Any]:
    """An English translation of quoted sentences, for a grammar-constrained backend: exactly one English sentence
    per quoted sentence, in order, the k-th citing the passage its sentence came from (`passage_of[k]`), which the
    model cannot change. No refusal: the sentences were already found to answer (rag.grounding.quotes)."""
    items = [{
        "type": "object",
        "properties": {"text": {"type": "string", "pattern": ENGLISH_TEXT, "minLength": 1}, "citations": {"const": [n]}},
        "required": ["text", "citations"],
        "additionalProperties": False,
    } for n in passage_of]
    return {
        "type": "object",
        "properties": {"refusal": {"const": False}, "sentences": {"type": "array", "prefixItems": items, "minItems": len(items),
                                                                  "maxItems": len(items)}},
        "required": ["refusal", "sentences"],
        "additionalProperties": False,
    }


def mode_for(provider: str, setting: str, base_url: str = "", local: bool = False) -> str:
    """How structured output is requested: json_object (llama.cpp), json_schema (OpenAI), ollama, or '' (text)."""
    s = (setting or "auto").strip().lower()
    if s in ("off", "false", "no", "text", "0"):
        return ""
    if s in ("json_object", "json_schema", "ollama"):
        return s
    if provider == "llamacpp":
        return "json_object"
    if provider == "ollama":
        return "ollama"
    if provider == "openai":
        return "json_object" if local else "json_schema"
    return ""


def request_kwargs(mode: str, schema: dict[str, Any], chat: Any = None) -> dict[str, Any]:
    """The keyword arguments of chat.stream() that ask for `schema` in `mode`."""
    if mode in ("json_object", "ollama") and "oneOf" not in schema and "items" in schema.get("properties", {}).get("sentences", {}):
        item = schema["properties"]["sentences"]["items"]["properties"]
        n = len(item["citations"]["items"]["enum"])
        schema = grammar_schema(n, schema["properties"]["sentences"].get("maxItems", MAX_SENTENCES), "pattern" in item["text"])
    if mode == "json_object":
        rf = {"type": "json_object", "schema": schema}
        if chat is not None and type(chat).__name__ == "ChatOpenAI":
            # in the request body, next to what the backend already sends there (max_tokens)
            return {"extra_body": {**(getattr(chat, "extra_body", None) or {}), "response_format": rf}}
        return {"response_format": rf}
    if mode == "json_schema":
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "cited_answer", "strict": True, "schema": schema}}}
    if mode == "ollama":
        return {"format": schema}
    return {}


@dataclass
class Structured:
    refusal: bool = False
    sentences: list[tuple[str, list[int]]] = field(default_factory=list)
    complete: bool = True  # False: the JSON was cut off (max_tokens) and read as far as it went


_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.I)
_MARKERS = re.compile(r"\s*[\[【［]\s*\d{1,3}(?:\s*[,，、]\s*\d{1,3})*\s*[\]】］]")


def parse(raw: str) -> Structured | None:
    """The model's JSON answer, or None when the text is not that JSON (then it is read as plain text)."""
    t = _FENCE.sub("", (raw or "").strip())
    if not t.startswith("{"):
        return None
    try:
        obj = json.loads(t)
    except json.JSONDecodeError:
        part = _partial(t)
        if part is None:
            return None
        part.complete = False
        return part
    if not isinstance(obj, dict) or not ("sentences" in obj or "refusal" in obj):
        return None
    out = Structured(refusal=bool(obj.get("refusal")))
    for s in obj.get("sentences") or []:
        if not isinstance(s, dict):
            continue
        text = _tidy(str(s.get("text") or ""))
        cites = [int(c) for c in (s.get("citations") or []) if isinstance(c, (int, float)) or (isinstance(c, str) and c.strip().isdigit())]
        if text:
            out.sentences.append((text, list(dict.fromkeys(cites))))
    return out


_TAGS = re.compile(r"</?\s*(?:text|sentence|sentences|citations|answer|p|br)\s*/?>", re.I)


def _tidy(text: str) -> str:
    """A sentence's text without the tags small models leave in it (“…优化。</text>,”) and trailing commas."""
    return re.sub(r"[\s,，]+$", "", _TAGS.sub("", text)).strip()


_STR = r'"((?:[^"\\]|\\.)*)'


def _partial(t: str) -> Structured | None:
    """Read a JSON answer that is still streaming or was cut off: the sentences so far, the last one's text
    as far as it goes (its citations only once their list is closed)."""
    if not re.match(r'\{\s*"', t):
        return None
    out = Structured(complete=False)
    m = re.search(r'"refusal"\s*:\s*(true|false)', t)
    out.refusal = bool(m and m.group(1) == "true")
    for m in re.finditer(rf'"text"\s*:\s*{_STR}("?)', t):
        body, closed = m.group(1), bool(m.group(2))
        if not closed:
            body = re.sub(r"\\(u[0-9a-fA-F]{0,3})?$", "", body)  # an escape cut in half
        try:
            text = json.loads(f'"{body}"')
        except json.JSONDecodeError:
            text = body
        cites: list[int] = []
        if closed:
            c = re.match(r'\s*,\s*"citations"\s*:\s*\[([^\]]*)\]', t[m.end():])
            if c:
                cites = [int(x) for x in re.findall(r"\d+", c.group(1))]
        out.sentences.append((_tidy(text) if closed else text, cites))
    return out


def _join(pieces: list[str], comparative: bool, english: bool) -> str:
    if comparative:
        return "\n".join(pieces)
    if english:
        return " ".join(pieces)
    return "".join(pieces)


def render(st: Structured, refusal: str, comparative: bool = False, english: bool = False, partial: bool = False) -> str:
    """The answer as text: each sentence followed by its markers, [1][2]; a refusal as the refusal sentence.

    `partial`: the last sentence may be unfinished (streaming); it is shown without markers until its
    citations are known."""
    if st.refusal and not any(t for t, _ in st.sentences):
        return refusal
    pieces = []
    for i, (text, cites) in enumerate(st.sentences):
        last_open = partial and i == len(st.sentences) - 1 and not cites
        body = text if last_open else _MARKERS.sub("", text).strip() if cites else text.strip()
        if not body:
            continue
        marks = "".join(f"[{n}]" for n in cites)
        if last_open or not marks:
            pieces.append(body + marks)
            continue
        # an item's citations cover every sentence of its text: each sentence carries them (the gate checks each)
        parts = [body[a:b].strip() for a, b in sentence_spans(body)]
        pieces.append((" " if english else "").join(x + marks for x in parts if x))
    return _join(pieces, comparative, english)


class StreamRenderer:
    """Turns streamed JSON into streamed answer text: feed(piece) returns the text to show that is new."""

    def __init__(self, refusal: str, comparative: bool = False, english: bool = False):
        self.raw = ""
        self.shown = ""
        self.refusal, self.comparative, self.english = refusal, comparative, english

    def feed(self, piece: str) -> str:
        self.raw += piece
        body = _FENCE.sub("", self.raw.lstrip())
        if body and not body.startswith(("{", "`")):  # a server that ignored the schema streams plain text: show it
            new, self.shown = self.raw[len(self.shown):], self.raw
            return new
        st = _partial(body)
        if st is None:
            return ""
        if st.refusal and not st.sentences:
            text = self.refusal if re.search(r'"sentences"\s*:', self.raw) else ""
        else:
            text = render(st, self.refusal, self.comparative, self.english, partial=True)
        if text.startswith(self.shown) and len(text) > len(self.shown):
            new, self.shown = text[len(self.shown):], text
            return new
        return ""


__all__ = ["answer_schema", "translation_schema", "mode_for", "request_kwargs", "parse", "render", "Structured", "StreamRenderer", "MAX_SENTENCES"]
