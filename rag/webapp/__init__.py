"""Stage 8: the chat app (Gradio 6), one module per concern:

* `state`   — a chat turn (`Turn`), saved conversations (the browser's storage) — pure;
* `render`  — HTML of messages, sources and the full reply; Copy text, Markdown export, the comparison
              table (rows, CSV, XLSX); coverage — pure;
* `service` — `ChatService`: answers a Turn through rag.pipeline (with hints: the filter excluded the
              answer, the index is being updated, did you mean, overview of a vague question, follow-ups),
              feedback, uploads, removal with undo — no Gradio;
* `stream`  — an LLM answer streamed from a worker thread, with Stop;
* `ui`      — the Gradio layout and handlers: `build_ui(settings) -> ChatUI`;
* `server`  — `serve` (bootstrap the index, warm up, launch);
* `static/` — the page's JavaScript and CSS.

Follow-up rewriting ('那沈阳呢?') is rag.followup. A JSON endpoint `/ask` serves API clients.
Importing this package does not import gradio.
"""
from __future__ import annotations

import os

from ..followup import rewrite_followup
from .render import render_answer, render_sources
from .server import bootstrap_index, serve
from .service import ALLOWED_UPLOAD, PROVIDERS, ChatApp, ChatService, safe_upload_name
from .state import Turn

# gradio reads these at import time (it is imported only inside build_ui)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_ui(settings):
    from .ui import build_ui as _build

    return _build(settings)


def build_app(settings):
    return build_ui(settings).demo


__all__ = [
    "serve", "build_ui", "build_app", "bootstrap_index", "rewrite_followup", "safe_upload_name", "render_answer",
    "render_sources", "ChatService", "ChatApp", "Turn", "PROVIDERS", "ALLOWED_UPLOAD",
]
