"""The chat app: helpers (fast), the real server through gradio_client, a load test, uploads and removal.

The server tests start `rag serve` in a subprocess on a free port over a copy of the bundled index.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import MORE, REPO, SHARED_CACHE, settings_for

RAG = str(Path(sys.executable).parent / "rag")


# ---------------------------------------------------------------------- a real server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`rag serve` in a subprocess; stopped by its own pid."""

    def __init__(self, index_dir: Path, log_path: Path, launcher: list[str] | None = None):
        self.index_dir = index_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        env = {**os.environ, "RAG_EMBED_CACHE": str(SHARED_CACHE), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [*(launcher or [RAG, "serve"]), "--port", str(self.port), "--index", str(index_dir)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
        )

    def wait(self, timeout: float = 240) -> "Server":
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"rag serve exited with {self.proc.returncode}:\n{Path(self.log_path).read_text()}")
            try:
                with urllib.request.urlopen(self.url + "config", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"rag serve did not answer within {timeout} s:\n{Path(self.log_path).read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def copy_index(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ingest.lock", "feedback.jsonl", "uploads"))
    return dst


@pytest.fixture(scope="module")
def server(bundled_index, tmp_path_factory):
    d = tmp_path_factory.mktemp("app")
    srv = Server(copy_index(bundled_index, d / "index"), d / "serve.log").wait()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False)


def ask(client, question: str, **kw) -> dict:
    res = client.predict(question=question, api_name="/ask", **kw)
    assert isinstance(res, dict), res
    assert not res.get("error"), res.get("error")
    return res


# ---------------------------------------------------------------------- fast: helpers
def test_rewrite_followup_replaces_the_place():
    from rag.webapp import rewrite_followup

    assert rewrite_followup("那沈阳呢?", ["营口市对博士每月补贴多少?"]) == "沈阳市对博士每月补贴多少?"
    assert rewrite_followup("那么郑州市呢？", ["营口市对博士每月补贴多少?"]) == "郑州市对博士每月补贴多少?"
    assert rewrite_followup("What about Shenyang?", ["营口市对博士每月补贴多少?"]) == "沈阳市对博士每月补贴多少?"
    # chained: the previous (rewritten) question is the base
    assert rewrite_followup("那天津呢?", ["营口市对博士每月补贴多少?", "沈阳市对博士每月补贴多少?"]) == "天津市对博士每月补贴多少?"
    # the previous question named no place
    assert rewrite_followup("那营口呢?", ["哪些城市对首贷户给予贴息?"]).startswith("营口市")


def test_rewrite_followup_leaves_full_questions_alone():
    from rag.webapp import rewrite_followup

    q = "郑州市对首次获评的专精特新企业奖励多少?"
    assert rewrite_followup(q, ["营口市对博士每月补贴多少?"]) == q
    assert rewrite_followup("营口市对博士每月补贴多少?", []) == "营口市对博士每月补贴多少?"
    assert rewrite_followup("那硕士呢?", ["营口市对博士每月补贴多少?"]).startswith("营口市对博士每月补贴多少")


def test_safe_upload_name_is_never_a_path():
    from rag.webapp import safe_upload_name

    assert safe_upload_name("006_linxiang.txt") == "006_linxiang.txt"
    assert safe_upload_name("../../etc/passwd.txt") == "passwd.txt"
    assert safe_upload_name("..\\..\\evil name;rm -rf.PDF") == "evil_name_rm_-rf.pdf"
    assert safe_upload_name("临湘 答复 (1).docx") == "临湘_答复_1.docx"
    assert safe_upload_name(".txt") == "upload.txt"
    assert "/" not in safe_upload_name("a/b/c/../../x.html") and safe_upload_name("a/b/c/../../x.html") == "x.html"
    for bad in ("x.exe", "x.txt.sh", "noext", "x.py"):
        with pytest.raises(ValueError):
            safe_upload_name(bad)


def test_answer_html_markers_and_warnings():
    from rag.webapp import Turn, render_answer, render_sources

    cit = {"n": 1, "doc_id": "yingkou", "city": "营口市", "title": "关于<b>x</b>", "section": "一、总体", "text": "每月补贴2000元。其他。", "quote": "每月补贴2000元。", "issuer": "", "date": ""}
    turn = Turn(question="那营口呢?", rewritten="营口市对博士每月补贴多少?", answer={
        "answer": "每月补贴2000元。[1]<script>", "abstained": False, "citations": [cit], "unsupported": ["3000元"], "note": "LLM failed",
        "timings_ms": {"retrieve": 12.0, "generate": 30.0, "total": 45.0}, "provider": "openai"})
    h = render_answer(turn, 0)
    assert 'class="cite"' in h and 'href="#src-0-1"' in h and "营口市" in h  # hover title names the source
    assert "<script>" not in h and "&lt;script&gt;" in h
    assert "3000元" in h and "LLM failed" in h and "营口市对博士每月补贴多少?" in h
    assert "retrieve 12 ms" in h and "generate 30 ms" in h and "total 45 ms" in h
    s = render_sources([turn], 0, 1)
    assert "<mark>每月补贴2000元。</mark>" in s and 'class="src selected"' in s and "<b>x</b>" not in s


def test_stream_yields_tokens_then_the_result():
    from rag.webapp.stream import stream as _stream

    def call(on_token):
        for t in ["营", "口", "市"]:
            on_token(t)
            time.sleep(0.1)
        return "done"

    out = list(_stream(call))
    assert out[-1] == "done" and out[-2] == "营口市"

    def boom(on_token):
        raise RuntimeError("model went away")

    with pytest.raises(RuntimeError):
        list(_stream(boom))


# ---------------------------------------------------------------------- slow: the real server
@pytest.mark.slow
def test_api_answers_comparative_question(client):
    res = ask(client, "哪些城市对首贷户给予贴息?")
    assert not res["abstained"], res["answer"]
    assert "沈阳" in res["answer"] and "营口" in res["answer"], res["answer"]
    cities = {c["city"] for c in res["citations"]}
    assert {"沈阳市", "营口市"} <= cities, cities
    assert "[1]" in res["answer"]
    assert res["timings_ms"]["total"] > 0


@pytest.mark.slow
def test_api_abstains_on_unknown_city(client):
    res = ask(client, "广州市对小微企业的贷款贴息政策是什么?")
    assert res["abstained"] is True
    assert "未找到" in res["answer"], res["answer"]
    assert res["citations"] == []


@pytest.mark.slow
def test_api_followup_is_rewritten(client):
    res = ask(client, "那沈阳呢?", history=["营口市对博士每月补贴多少?"])
    assert res["rewritten_question"] == "沈阳市对博士每月补贴多少?"
    assert res["question"] == "那沈阳呢?"
    res = ask(client, "营口市对博士每月补贴多少?")
    assert "2000元" in res["answer"] and res["citations"][0]["city"] == "营口市"


@pytest.mark.slow
def test_api_city_filter_and_bad_input(client):
    res = ask(client, "对首贷户给予贴息吗?", cities=["沈阳"])
    assert res["citations"] and {c["city"] for c in res["citations"]} == {"沈阳市"}
    res = client.predict(question="   ", api_name="/ask")
    assert res["error"] and "question" in res["error"]


@pytest.mark.slow
def test_load_20_concurrent_questions(server):
    """20 users at once: every question answered, in full, to the one who asked it (p50/p95 printed only)."""
    from gradio_client import Client

    questions = [
        "哪些城市对首贷户给予贴息?",
        "郑州市对首次获评的专精特新企业奖励多少?",
        "营口市对博士每月补贴多少?",
        "How much does Zhengzhou award a first-time 'little giant' enterprise?",
        "天津市如何支持小微企业融资?",
    ] * 4
    start = threading.Barrier(len(questions))

    def one(q):
        c = Client(server.url, verbose=False)
        start.wait(timeout=120)
        t0 = time.perf_counter()
        res = c.predict(question=q, api_name="/ask")
        return q, res, time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(questions)) as ex:
        results = list(ex.map(one, questions))
    wall = time.perf_counter() - t0
    assert len(results) == 20
    for q, res, _ in results:
        assert isinstance(res, dict) and not res.get("error"), (q, res)
        assert res["question"] == q  # nobody got somebody else's answer
        assert res["answer"].strip()
    by_q: dict[str, set[str]] = {}
    for q, res, _ in results:
        by_q.setdefault(q, set()).add(res["answer"])
    assert all(len(v) == 1 for v in by_q.values()), "the same question got different answers under load"
    lat = sorted(r[2] for r in results)
    p50 = statistics.median(lat)
    p95 = lat[min(len(lat) - 1, int(round(0.95 * len(lat))) - 1)]
    print(f"\nload test: 20 concurrent questions in {wall:.1f} s · p50 {p50:.2f} s · p95 {p95:.2f} s · max {lat[-1]:.2f} s")


# ---------------------------------------------------------------------- slow: uploads, removal, feedback (in process)
@pytest.fixture()
def chat_app(bundled_index, tmp_path):
    from rag.webapp import ChatApp

    return ChatApp(settings_for(copy_index(bundled_index, tmp_path / "index"), **{"app.upload_max_mb": 1}))


@pytest.mark.slow
def test_upload_bad_files_leave_index_unchanged(chat_app, tmp_path):
    from rag.index import IndexStore

    store = IndexStore(chat_app.settings.index_dir)
    before = store.current_name()
    bad_pdf = tmp_path / "broken.pdf"
    bad_pdf.write_bytes(b"%PDF-1.4 this is not really a pdf")
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")
    big = tmp_path / "big.txt"
    big.write_text("答" * (600 * 1024), encoding="utf-8")  # > 1 MB
    msg = chat_app.add_files([str(bad_pdf), str(exe), str(big)])
    assert "nothing was ingested" in msg and "unchanged" in msg, msg
    assert "tool.exe" in msg and "big.txt" in msg and "broken.pdf" in msg, msg
    assert "Traceback" not in msg
    assert store.current_name() == before
    assert not list((Path(chat_app.settings.index_dir) / "uploads").glob("*/*")), "rejected uploads must not stay on disk"


@pytest.mark.slow
def test_upload_locked_index_says_so(chat_app):
    from rag.ingest import lock_for

    lock = lock_for(Path(chat_app.settings.index_dir))
    lock.acquire()
    try:
        msg = chat_app.add_files([str(MORE / "006_linxiang.txt")])
    finally:
        lock.release()
    assert "locked" in msg and "another" in msg, msg


@pytest.mark.slow
def test_upload_then_remove(chat_app, tmp_path):
    src = tmp_path / "..%2F临湘 reply.txt"
    shutil.copyfile(MORE / "006_linxiang.txt", src)
    msg = chat_app.add_files([str(src)])
    assert "added 1" in msg, msg
    ids = [r[0] for r in chat_app.doc_rows()]
    doc_id = next(i for i in ids if "临湘" in i)
    assert "/" not in doc_id and ".." not in doc_id
    ans = chat_app.ask("临湘市助保贷风险基金增加到多少?", [], None, None, "extractive")
    assert any(c.doc_id == doc_id for c in ans.citations), ans.answer
    stored = Path(chat_app.generation().docs[doc_id].path)
    assert Path(chat_app.settings.index_dir, "uploads").resolve() in stored.resolve().parents
    msg = chat_app.remove([doc_id])
    assert "removed" in msg and doc_id in msg
    assert doc_id not in [r[0] for r in chat_app.doc_rows()]
    assert not stored.exists()
    assert "no document" in chat_app.remove(["nope"])


@pytest.mark.slow
def test_feedback_is_appended(chat_app):
    ans = chat_app.ask("营口市对博士每月补贴多少?", [], None, None, "extractive")
    from rag.webapp import Turn

    rec = Turn(question=ans.question, answer=ans.to_dict())
    chat_app.record_feedback(rec, "up")
    fid = chat_app.record_feedback(rec, "down")
    chat_app.record_feedback(rec, "down", comment="数字不对", fid=fid)
    rows = [json.loads(x) for x in (Path(chat_app.settings.index_dir) / "feedback.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["rating"] for r in rows] == ["up", "down", "down"]
    assert rows[2]["id"] == rows[1]["id"] != rows[0]["id"] and rows[2]["comment"] == "数字不对"  # the 👎 comment, with its rating
    assert rows[0]["question"] == "营口市对博士每月补贴多少?" and rows[0]["citations"][0]["doc_id"] == "yingkou" and rows[0]["timestamp"]


@pytest.mark.slow
def test_chat_handler_streams_llm_tokens_and_shows_errors(bundled_index, tmp_path, monkeypatch):
    """The chat generator: an LLM provider's tokens arrive before the final answer; failures become a message."""
    import types

    from rag.webapp import build_ui

    def fake_llm_answer(settings, provider, query, hits, fallback=None, on_token=None, **_):
        if provider == "llamacpp":
            raise RuntimeError("model file missing")
        for tok in ["营口市", "每月", "补贴"]:
            on_token(tok)
            time.sleep(0.15)
        fallback.provider = provider
        fallback.note = "fake model"
        return fallback

    monkeypatch.setitem(sys.modules, "rag.llm", types.SimpleNamespace(llm_answer=fake_llm_answer))
    ui = build_ui(settings_for(copy_index(bundled_index, tmp_path / "index")))
    outs = list(ui.respond("营口市对博士每月补贴多少?", [], [], 5, "openai", "", ""))
    partial = [o[0][-1]["content"] for o in outs if isinstance(o[0], list) and "streaming" in o[0][-1]["content"]]
    assert any("营口市每月" in p for p in partial), partial  # tokens were shown while streaming
    chat, turns = outs[-1][0], outs[-1][1]
    final = chat[-1]["content"]
    assert "2000元" in final and "fake model" in final and "openai" in final and "streaming" not in final
    assert turns[-1].answer["provider"] == "openai"

    outs = list(ui.respond("那沈阳呢?", turns, [], 5, "llamacpp", "", ""))
    final = outs[-1][0][-1]["content"]
    if "not installed" not in final:  # llama-cpp-python installed: the fake model's failure is shown
        assert "rag-error" in final and "model file missing" in final and "Traceback" not in final
    assert outs[-1][1][-1].error


@pytest.mark.slow
def test_app_py_bootstraps_an_empty_index(tmp_path):
    """`python app.py` on an empty index directory first builds it from data/replies, then answers."""
    from gradio_client import Client

    idx = tmp_path / "empty-index"
    srv = Server(idx, tmp_path / "serve.log", launcher=[sys.executable, str(REPO / "app.py")])
    try:
        srv.wait(timeout=600)
        assert "building it from" in Path(srv.log_path).read_text()
        res = ask(Client(srv.url, verbose=False), "营口市对博士每月补贴多少?")
        assert "2000元" in res["answer"]
        assert len(json.loads((idx / json.loads((idx / "CURRENT").read_text())["generation"] / "docs.json").read_text())) == 5
    finally:
        srv.stop()
