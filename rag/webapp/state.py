"""The chat's state, typed: one `Turn` per question, conversations saved in the browser.

A Turn travels through gr.State as an object and into the browser's storage (gr.BrowserState) as a plain
dict (`to_dict` / `from_dict`, JSON-safe). The conversation store is a dict
{"current": id, "convs": [{"id", "title", "updated", "turns": [turn dicts]}]}; the functions below change
it without side effects (the Gradio handlers call them and hand the result back to the browser).
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

MAX_CONVERSATIONS = 40  # the browser's storage holds about 5 MB; a turn with its passages is 5–20 kB
MAX_TURNS_SAVED = 60
MAX_STORE_BYTES = 2_000_000  # JSON; encrypted and base64-encoded it stays under the usual 5 MB quota


@dataclass
class Turn:
    question: str
    rewritten: str = ""  # the question as asked (follow-ups rewritten), when it differs
    answer: dict[str, Any] | None = None  # rag.types.Answer.to_dict()
    error: str = ""
    pending: bool = False  # still being answered
    partial: str = ""  # streamed LLM text so far
    stopped: bool = False  # the user pressed Stop
    stage: str = ""  # while pending: retrieve | generate | verify (the stage really running)
    model: str = ""  # the LLM writing the answer (shown in the status while it generates)
    first_token_ms: float | None = None  # time from the question to the model's first token
    time: str = ""
    cities: list[str] = field(default_factory=list)  # the city filter of the settings when asked
    provider: str = ""
    retrieved: list[dict[str, Any]] = field(default_factory=list)  # passages retrieved but not cited
    hints: list[dict[str, Any]] = field(default_factory=list)  # {"kind", "text", "action"?, "question"?}
    suggestions: list[str] = field(default_factory=list)  # follow-up / more precise questions
    overview: bool = False  # a vague question answered with one line per reply

    @property
    def done(self) -> bool:
        return not self.pending

    @property
    def asked(self) -> str:
        return self.rewritten or self.question

    @property
    def citations(self) -> list[dict[str, Any]]:
        return list((self.answer or {}).get("citations") or [])

    @property
    def comparative(self) -> bool:
        a = self.answer or {}
        return bool((a.get("filters") or {}).get("comparative")) and not a.get("abstained") and len({c.get("city") for c in self.citations}) > 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> "Turn":
        if isinstance(d, Turn):
            return d
        d = d if isinstance(d, dict) else {}
        names = {f.name for f in fields(cls)}
        t = cls(**{k: v for k, v in d.items() if k in names and k != "question"}, question=str(d.get("question") or ""))
        if t.pending:  # a turn saved mid-answer (reload while streaming): it will never finish
            t.pending, t.stopped = False, True
        return t


def turns_from(value: Any) -> list[Turn]:
    return [Turn.from_dict(t) for t in (value or [])]


# ---------------------------------------------------------------------- saved conversations
def new_id() -> str:
    return uuid.uuid4().hex[:12]


def empty_store() -> dict[str, Any]:
    return {"current": "", "convs": []}


def _store(store: Any) -> dict[str, Any]:
    if not isinstance(store, dict) or not isinstance(store.get("convs"), list):
        return empty_store()
    convs = [c for c in store["convs"] if isinstance(c, dict) and c.get("id")]
    return {"current": str(store.get("current") or ""), "convs": convs}


def title_of(turns: list[Turn]) -> str:
    q = next((t.question for t in turns if t.question), "")
    return (q[:28] + "…") if len(q) > 28 else (q or "新对话 New chat")


def get_conv(store: Any, conv_id: str) -> dict[str, Any] | None:
    return next((c for c in _store(store)["convs"] if c["id"] == conv_id), None)


def save_conv(store: Any, conv_id: str, turns: list[Turn]) -> dict[str, Any]:
    """The store with conversation conv_id holding turns (created if new; an empty chat is not kept)."""
    s = _store(store)
    done = [t for t in turns if not t.pending][-MAX_TURNS_SAVED:]
    conv = next((c for c in s["convs"] if c["id"] == conv_id), None)
    if conv is None:
        if not done:
            return {**s, "current": conv_id}
        conv = {"id": conv_id, "title": "", "renamed": False}
        s["convs"].append(conv)
    conv["turns"] = [t.to_dict() for t in done]
    if not conv.get("renamed"):
        conv["title"] = title_of(done)
    conv["updated"] = time.strftime("%Y-%m-%d %H:%M")
    conv["ts"] = time.time()
    s["convs"].sort(key=lambda c: c.get("ts", 0.0), reverse=True)
    s["convs"] = s["convs"][:MAX_CONVERSATIONS]
    while len(s["convs"]) > 1 and len(json.dumps(s, ensure_ascii=False).encode()) > MAX_STORE_BYTES:
        s["convs"].pop()  # the oldest go first: the browser's storage is small
    s["current"] = conv_id
    return s


def rename_conv(store: Any, conv_id: str, title: str) -> dict[str, Any]:
    s = _store(store)
    title = (title or "").strip()[:60]
    for c in s["convs"]:
        if c["id"] == conv_id and title:
            c["title"], c["renamed"] = title, True
    return s


def delete_conv(store: Any, conv_id: str) -> dict[str, Any]:
    s = _store(store)
    s["convs"] = [c for c in s["convs"] if c["id"] != conv_id]
    s["current"] = s["convs"][0]["id"] if s["convs"] else ""
    return s


def conv_choices(store: Any) -> list[tuple[str, str]]:
    """(label, id) pairs for the conversation list, newest first."""
    out = []
    for c in _store(store)["convs"]:
        n = len(c.get("turns") or [])
        out.append((f"{c.get('title') or '对话'} · {n} 问 · {c.get('updated', '')}", c["id"]))
    return out


__all__ = ["Turn", "turns_from", "new_id", "empty_store", "save_conv", "rename_conv", "delete_conv", "get_conv", "conv_choices", "title_of"]
