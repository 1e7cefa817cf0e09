"""Streaming an LLM answer into a Gradio generator: the model runs in a worker thread, its tokens are
handed over through a queue, and Stop (a threading.Event) ends both sides."""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterator


class Stopped(BaseException):
    """The user pressed Stop. A BaseException so that the model code's `except Exception` fallbacks do not
    turn it into an answer."""


def stream(call: Callable[[Callable[[str], None]], Any], stop: threading.Event | None = None, every: float = 0.08) -> Iterator[Any]:
    """Run call(on_token) in a worker thread; yield the accumulated text as tokens arrive, then the result.

    on_token also takes events (dicts, e.g. {"stage": "generate", "model": …} from Pipeline.ask's on_event):
    each is yielded as it is, at once (a stage change is never held back by the text's throttle).

    When `stop` is set (or the consumer closes this generator) the worker's next on_token raises Stopped,
    which ends the model's stream, and this generator raises Stopped at once."""
    stop = stop or threading.Event()
    q: queue.Queue = queue.Queue()
    box: dict[str, Any] = {}

    def on_token(tok: str) -> None:
        if stop.is_set():
            raise Stopped()
        q.put(tok if isinstance(tok, dict) else str(tok))

    def worker():
        try:
            box["result"] = call(on_token)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e
        finally:
            q.put(None)

    t = threading.Thread(target=worker, daemon=True, name="rag-llm-stream")
    t.start()
    text, last = "", 0.0
    try:
        while True:
            try:
                tok = q.get(timeout=0.25)
            except queue.Empty:
                if stop.is_set():
                    raise Stopped() from None
                continue
            if tok is None:
                break
            if stop.is_set():
                raise Stopped()
            if isinstance(tok, dict):
                yield tok
                continue
            text += tok
            now = time.monotonic()
            if now - last >= every:
                last = now
                yield text
    finally:
        if t.is_alive():  # Stop, an error, or the consumer went away: the model stops at its next token
            stop.set()
    t.join()
    if "error" in box:
        raise box["error"]
    yield box["result"]


__all__ = ["stream", "Stopped"]
