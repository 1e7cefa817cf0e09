"""Serving the chat: build the index of data/replies when there is none, warm up, launch Gradio."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ..config import REPO_ROOT, Settings
from .service import readable

log = logging.getLogger("rag.webapp")
BOOTSTRAP_DIR = REPO_ROOT / "data" / "replies"


def bootstrap_index(settings: Settings, source: Path = BOOTSTRAP_DIR) -> bool:
    """Build the index of the bundled replies when the index has no documents. True if it was built."""
    from ..ingest import ingest
    from ..store import open_store

    manifest = open_store(settings).read_manifest()
    if manifest and manifest.get("chunk_count", 0) > 0:
        return False
    if not source.is_dir():
        log.warning("no documents in %s and no %s to bootstrap from", settings.index_dir, source)
        return False
    print(f"rag: the index at {settings.index_dir} is empty; building it from {source} …", flush=True)
    rep = ingest([source], settings, lock_timeout=600)
    print(f"rag: indexed {len(rep.added) + len(rep.updated)} replies, {rep.chunks_total} chunks in {rep.seconds:.1f} s", flush=True)
    return True


def warm_provider(settings: Settings) -> threading.Thread | None:
    """Load the configured in-process model (llamacpp) in the background, so the first question finds it
    loaded; it then stays loaded for every later question (rag.providers keeps it)."""
    from ..providers import REGISTRY

    p = REGISTRY.get((settings.llm.provider or "").lower())
    if p is None or not p.uses_model or p.missing_modules():
        return None

    def run() -> None:
        try:
            p.warm(settings)
        except Exception as e:  # noqa: BLE001 - the first question shows the problem with the extractive answer
            print(f"rag: warning: {p.name}: {readable(e)}", flush=True)

    t = threading.Thread(target=run, name=f"warm-{p.name}", daemon=True)
    t.start()
    return t


def serve(settings: Settings, bootstrap: bool = True, block: bool = True):
    """Serve the chat at http://<settings.app.host>:<settings.app.port>. Returns the ChatUI."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SystemExit("rag: the chat needs gradio: run `make run` (or `.venv/bin/pip install -e '.[app]'`)") from None
    from .ui import asset, build_ui

    if bootstrap:
        bootstrap_index(settings)
    ui = build_ui(settings)
    try:  # warm up: load the index and the embedder before the first question
        gen = ui.service.retriever.generation()
        if gen.chunks:
            ui.service.retriever.embedder.embed_array(["warm up"], is_query=True)
    except Exception as e:  # noqa: BLE001 - the chat shows the problem at the first question
        print(f"rag: warning: {readable(e)}", flush=True)
    warm_provider(settings)
    host, port = settings.app.host or "127.0.0.1", int(settings.app.port or 7860)
    print(f"rag: serving {settings.index_dir} at http://{host}:{port}", flush=True)
    ui.demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=f"{settings.app.upload_max_mb}mb",
        show_error=False,
        ssr_mode=False,
        prevent_thread_lock=not block,
        quiet=True,
        css=asset("app.css"),
        footer_links=[],
        enable_monitoring=False,
        mcp_server=False,
        pwa=False,
    )
    return ui


__all__ = ["serve", "bootstrap_index", "warm_provider", "BOOTSTRAP_DIR"]
