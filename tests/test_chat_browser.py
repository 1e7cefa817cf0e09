"""The chat as a researcher's workbench, in a real page (Playwright + system Chromium, CJK font): Copy gives
text, a conversation survives a reload and can be reopened/renamed/deleted, Markdown export holds the
references, the comparison table downloads as CSV (one row per city, each figure verbatim in its cited
passage) and XLSX, the city filter says when it excluded the answer, Stop ends a streaming LLM answer (a
slow fake OpenAI-compatible server on 127.0.0.1), a phone-size page has a sources drawer, removing a
document asks first and can be undone, 👎 takes a comment. Screenshots of every state go to tests/artifacts/.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from test_app import Server, copy_index, free_port

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
ANSWER_TIMEOUT = 120_000  # ms
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 400, "height": 900}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(bundled_index, tmp_path_factory):
    d = tmp_path_factory.mktemp("workbench")
    srv = Server(copy_index(bundled_index, d / "index"), d / "serve.log").wait()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium fonts-wqy-microhei)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


class Page:
    """One browser context (its own localStorage) on the app."""

    def __init__(self, browser, server, viewport=DESKTOP, clipboard=False):
        self.ctx = browser.new_context(viewport=viewport, locale="zh-CN", accept_downloads=True)
        if clipboard:
            self.ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url.rstrip("/"))
        self.pg = self.ctx.new_page()
        self.pg.set_default_timeout(30_000)
        self.url = server.url
        self.open()

    def open(self):
        self.pg.goto(self.url)  # never wait for "networkidle": Gradio keeps connections open
        self.pg.wait_for_selector("#question textarea")

    def shot(self, name: str, at: str | None = None):
        if at:
            self.pg.locator(at).first.scroll_into_view_if_needed()
            self.pg.wait_for_timeout(200)
        self.pg.screenshot(path=str(ARTIFACTS / f"workbench-{name}.png"))

    def answers(self) -> int:
        return self.pg.locator("#chat .timings").count() + self.pg.locator("#chat .rag-error").count()

    def ask(self, question: str) -> str:
        n = self.answers()
        self.pg.fill("#question textarea", question)
        self.pg.click("#ask-btn")
        self.wait_answers(n + 1)
        return self.last()

    def wait_answers(self, n: int):
        self.pg.wait_for_function(
            "n => document.querySelectorAll('#chat .timings').length + document.querySelectorAll('#chat .rag-error').length >= n"
            " && !document.querySelector('#chat .streaming')", arg=n, timeout=ANSWER_TIMEOUT,
        )
        self.pg.wait_for_timeout(300)

    def last(self) -> str:
        return self.pg.locator("#chat .rag-msg").last.inner_text()

    def settings(self):
        if not self.pg.locator("#cities").is_visible():
            self.pg.click("#settings")
            self.pg.locator("#cities").wait_for(state="visible")

    def pick(self, dropdown: str, option: str):
        self.pg.locator(f"{dropdown} input").first.click()
        self.pg.get_by_role("option", name=option, exact=True).click()
        self.pg.keyboard.press("Escape")
        self.pg.wait_for_timeout(300)

    def close(self):
        self.ctx.close()


@pytest.fixture()
def page(browser, server):
    p = Page(browser, server)
    yield p
    p.close()


def _guard(p: Page, name: str):
    """Screenshot the whole page when a test fails."""
    class G:
        def __enter__(self):
            return p

        def __exit__(self, et, e, tb):
            if et is not None:
                p.pg.screenshot(path=str(ARTIFACTS / f"failure-workbench-{name}.png"), full_page=True)
            return False
    return G()


def test_copy_gives_text_without_tags(browser, server):
    p = Page(browser, server, clipboard=True)
    with _guard(p, "copy"):
        answer = p.ask("营口市对博士每月补贴多少?")
        assert "2000元" in answer
        p.pg.locator("#chat .rag-msg").last.locator("a.act", has_text="复制").click()
        p.pg.wait_for_function("() => !!window.__ragLastCopy")
        clip = p.pg.evaluate("navigator.clipboard.readText()")
        assert clip == p.pg.evaluate("window.__ragLastCopy")
        assert "<" not in clip and "class=" not in clip and "&lt;" not in clip, clip
        assert "2000元" in clip and "[1]" in clip
        refs = clip.split("参考 References:")[1]
        assert "[1] 营口市" in refs and "《" in refs and "›" in refs  # city, title, section
        p.shot("copy", at="#chat")
    p.close()


def test_conversation_survives_reload_and_can_be_reopened(page):
    p = page
    with _guard(p, "reload"):
        p.ask("营口市对博士每月补贴多少?")
        p.ask("那沈阳呢?")
        p.pg.reload()
        p.pg.wait_for_selector("#question textarea")
        p.pg.wait_for_function("() => document.querySelectorAll('#chat .rag-msg').length >= 2", timeout=30_000)
        assert "2000元" in p.pg.locator("#chat .rag-msg").first.inner_text()
        assert "沈阳市对博士每月补贴多少?" in p.last()  # the rewritten follow-up came back too
        assert "沈阳市" in p.pg.inner_text("#sources")  # and the sources panel
        p.shot("reloaded")

        # a new chat, then the saved one reopened from the list
        p.pg.click("#new-btn")
        p.pg.wait_for_function("() => document.querySelectorAll('#chat .rag-msg').length === 0")
        p.ask("哪些城市对首贷户给予贴息?")
        p.pg.click("#convs")
        p.pg.locator("#conv-list input").click()
        options = p.pg.get_by_role("option")
        labels = options.all_inner_texts()
        assert any("营口市对博士每月补贴多少?" in x for x in labels) and any("哪些城市对首贷户" in x for x in labels), labels
        p.shot("conversation-list", at="#convs")
        p.pg.get_by_role("option", name="营口市对博士每月补贴多少?", exact=False).click()
        p.pg.wait_for_function("() => document.querySelectorAll('#chat .rag-msg').length === 2 && document.querySelector('#chat').innerText.includes('2000元')")

        # rename, reload: the name and the conversation stay
        p.pg.fill("#conv-name textarea", "博士补贴对比")
        p.pg.click("#conv-rename")
        p.pg.wait_for_function("() => document.querySelector('#conv-list input').value.startsWith('博士补贴对比')")
        p.pg.wait_for_timeout(500)
        p.pg.reload()
        p.pg.wait_for_selector("#question textarea")
        p.pg.wait_for_function("() => document.querySelector('#chat').innerText.includes('2000元')", timeout=30_000)
        p.pg.click("#convs")
        p.pg.locator("#conv-list input").click()
        assert any("博士补贴对比" in x for x in p.pg.get_by_role("option").all_inner_texts())
        p.pg.keyboard.press("Escape")
        p.shot("renamed")

        # delete it: the other conversation opens
        p.pg.click("#conv-delete")
        p.pg.wait_for_function("() => document.querySelector('#chat').innerText.includes('首贷')")
        p.pg.locator("#conv-list input").click()
        assert not any("博士补贴对比" in x for x in p.pg.get_by_role("option").all_inner_texts())
        p.pg.keyboard.press("Escape")


def test_export_markdown_holds_references(page):
    p = page
    with _guard(p, "export"):
        p.ask("营口市对博士每月补贴多少?")
        p.ask("哪些城市对首贷户给予贴息?")
        with p.pg.expect_download() as dl:
            p.pg.click("#export-btn")
        md = Path(dl.value.path()).read_text(encoding="utf-8")
        assert dl.value.suggested_filename.endswith(".md")
        assert "## 1. 营口市对博士每月补贴多少?" in md and "## 2. 哪些城市对首贷户给予贴息?" in md
        assert md.count("### 参考 References") == 2
        assert "**[1]** 营口市" in md and "《关于促进我市中小企业创新发展的建议提案》" in md
        assert "> 三是实施《营口市引进重点高校本科以上毕业生生活补贴发放管理实施细则(试行)》" in md or "每月分别享受2000元" in md
        assert "| 城市 | 措施 | 数字/标准 | 来源 |" in md and "| 沈阳市 |" in md
        assert "<div" not in md and "class=" not in md
        # one answer
        with p.pg.expect_download() as dl1:
            p.pg.locator("#chat .rag-msg").first.locator("a.act", has_text="Markdown").click()
        one = Path(dl1.value.path()).read_text(encoding="utf-8")
        assert one.startswith("# 营口市对博士每月补贴多少?") and "## 参考 References" in one and "首贷" not in one


def test_comparative_answer_is_a_table_that_downloads(page):
    p = page
    with _guard(p, "table"):
        p.ask("哪些城市对首贷户给予贴息?")
        msg = p.pg.locator("#chat .rag-msg").last
        assert msg.locator("table.cmp").count() == 1
        heads = msg.locator("table.cmp th").all_inner_texts()
        assert heads == ["城市", "措施", "数字/标准", "来源"], heads
        p.pg.locator("#cmp-group").first.wait_for(state="visible")
        p.pg.locator("#cmp-group").first.scroll_into_view_if_needed()
        p.shot("table")
        with p.pg.expect_download() as dl:
            p.pg.click("#cmp-csv")
        rows = list(csv.reader(io.StringIO(Path(dl.value.path()).read_text(encoding="utf-8-sig"))))
        assert rows[0] == ["城市", "措施", "数字/标准", "来源"]
        cities = [r[0] for r in rows[1:]]
        assert len(cities) == len(set(cities)) >= 2 and {"沈阳市", "营口市"} <= set(cities), cities  # one row per city
        # every figure is written, as is, in a passage its row cites (the sources panel shows those passages)
        import re

        checked = 0
        for city, _, figs, src in rows[1:]:
            nums = [int(n) for n in re.findall(r"\[(\d+)\]", src)]
            passages = "".join(p.pg.locator(f'#sources .src[data-n="{n}"] .src-text').inner_text() for n in nums)
            for f in [x for x in figs.split("；") if x and x != "—"]:
                assert f in passages, (city, f, nums)
                checked += 1
        assert checked >= 4
        assert "719户" in [r for r in rows if r[0] == "沈阳市"][0][2]
        with p.pg.expect_download() as dx:
            p.pg.click("#cmp-xlsx")
        sheet = zipfile.ZipFile(dx.value.path()).read("xl/worksheets/sheet1.xml").decode()
        assert all(c in sheet for c in cities)


def test_city_filter_says_it_excluded_the_answer(page):
    p = page
    with _guard(p, "filter"):
        p.settings()
        p.pick("#cities", "营口市")
        p.ask("沈阳市累计增加首贷户多少户?")
        hint = p.pg.locator("#chat .rag-msg").last.locator(".hint-filter")
        assert hint.count() == 1
        text = hint.inner_text()
        assert "城市筛选为 营口市" in text and "沈阳市" in text and "Search all replies" in text, text
        hint.scroll_into_view_if_needed()
        p.shot("filter-hint")
        n = p.answers()
        hint.locator("a.act").click()
        p.wait_answers(n + 1)
        assert "719户" in p.last()
        assert "营口市" not in p.pg.locator("#cities").inner_text().split("empty = all")[-1]  # the filter was cleared
        p.shot("filter-cleared")


class SlowOpenAI:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 that streams one token every `delay` seconds."""

    def __init__(self, tokens: int = 80, delay: float = 0.3):
        self.sent = 0
        self.disconnected = threading.Event()
        self.requests = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                outer.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for i in range(tokens):
                        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "slow",
                                 "choices": [{"index": 0, "delta": {"content": f"营口市每月补贴{i}。"}, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                        self.wfile.flush()
                        outer.sent = i + 1
                        time.sleep(delay)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    outer.disconnected.set()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_stop_ends_a_streaming_llm_answer(page):
    p = page
    fake = SlowOpenAI()
    try:
        with _guard(p, "stop"):
            p.settings()
            p.pick("#provider", "openai")
            p.pg.fill("#base-url textarea", fake.url)
            p.pg.fill("#model textarea", "slow")
            p.pg.fill("#question textarea", "营口市对博士每月补贴多少?")
            p.pg.click("#ask-btn")
            p.pg.wait_for_function("() => { const s = document.querySelector('#chat .streaming'); return s && s.innerText.includes('每月补贴3'); }",
                                   timeout=ANSWER_TIMEOUT)
            p.shot("streaming", at="#chat")
            t0 = time.monotonic()
            p.pg.click("#stop-btn")
            p.pg.wait_for_function("() => !document.querySelector('#chat .streaming') && document.querySelector('#chat').innerText.includes('已停止')",
                                   timeout=10_000)
            assert time.monotonic() - t0 < 8
            stopped_text = p.last()
            assert "已停止" in stopped_text and "每月补贴" in stopped_text
            assert fake.disconnected.wait(10), f"the model kept streaming ({fake.sent} tokens sent)"
            sent = fake.sent
            p.pg.wait_for_timeout(1500)
            assert p.last() == stopped_text  # nothing more arrives
            assert fake.sent <= sent + 1 < 80
            p.shot("stopped", at="#chat")
            # the chat goes on: the next question is answered (back to extractive)
            p.pick("#provider", "extractive")
            assert "2000元" in p.ask("营口市对博士每月补贴多少?")
    finally:
        fake.close()


def test_phone_has_a_sources_drawer(browser, server):
    p = Page(browser, server, viewport=PHONE)
    with _guard(p, "phone"):
        p.ask("营口市对博士每月补贴多少?")
        side = p.pg.locator("#side-col")

        def on_screen() -> bool:
            box = side.bounding_box()
            return box is not None and box["y"] < PHONE["height"] - 100

        assert not on_screen()  # closed: the answer has the whole screen
        assert p.pg.locator(".drawer-btn").is_visible()
        p.shot("phone-answer")
        p.pg.locator("#chat a.cite").last.click()  # a citation opens the drawer at its source
        p.pg.wait_for_timeout(600)
        assert on_screen()
        assert p.pg.locator("#sources .src.selected").is_visible() and "营口市" in p.pg.locator("#sources .src.selected").inner_text()
        p.shot("phone-drawer")
        p.pg.locator("#sources a.back-to-answer").click()
        p.pg.wait_for_timeout(600)
        assert not on_screen()
        assert p.pg.locator("#chat .rag-msg").last.is_visible()
        p.shot("phone-back")
        p.pg.locator(".drawer-btn").click()
        p.pg.wait_for_timeout(600)
        assert on_screen()
    p.close()


def test_remove_asks_first_and_can_be_undone(page):
    p = page
    with _guard(p, "remove"):
        p.pg.get_by_role("tab", name="文档 Documents").click()
        p.pg.wait_for_function("() => document.querySelector('#docs-table') && document.querySelector('#docs-table').innerText.includes('tianjin')")
        p.pick("#remove-ids", "tianjin")
        p.pg.click("#remove-btn")
        p.pg.locator("#remove-confirm").first.wait_for(state="visible")
        assert "tianjin" in p.pg.locator("#remove-confirm").first.inner_text() and "tianjin" in p.pg.inner_text("#docs-table")
        p.shot("remove-confirm")
        p.pg.click("#remove-no")
        p.pg.locator("#remove-confirm").first.wait_for(state="hidden")
        assert "tianjin" in p.pg.inner_text("#docs-table")
        p.pg.click("#remove-btn")
        p.pg.click("#remove-yes")
        p.pg.wait_for_function("() => document.querySelector('#docs-status').innerText.includes('removed')", timeout=ANSWER_TIMEOUT)
        p.pg.wait_for_function("() => !document.querySelector('#docs-table').innerText.includes('tianjin')")
        p.pg.locator("#undo-btn").wait_for(state="visible")
        p.shot("removed")
        p.pg.click("#undo-btn")
        p.pg.wait_for_function("() => document.querySelector('#docs-status').innerText.includes('restored')", timeout=ANSWER_TIMEOUT)
        p.pg.wait_for_function("() => document.querySelector('#docs-table').innerText.includes('tianjin')")
        assert not p.pg.locator("#undo-btn").is_visible()
        p.shot("restored")


def test_dislike_takes_a_comment_and_chat_tools(page, server):
    p = page
    with _guard(p, "comment"):
        p.ask("营口市对博士每月补贴多少?")
        p.pg.locator('#chat button[aria-label="Dislike"], #chat button[aria-label="踩"]').last.click()
        p.pg.locator("#fb-comment").wait_for(state="visible")
        p.pg.fill("#fb-text textarea", "想看硕士的数字")
        p.shot("dislike-comment", at="#fb-comment")
        p.pg.click("#fb-send")
        p.pg.locator("#fb-comment").wait_for(state="hidden")
        rows = [json.loads(x) for x in (server.index_dir / "feedback.jsonl").read_text(encoding="utf-8").splitlines()]
        last = rows[-1]
        assert last["comment"] == "想看硕士的数字" and last["rating"] == "down" and last["id"] == rows[-2]["id"]

        # coverage on the chat tab
        p.pg.click("#coverage-acc")
        cov = p.pg.locator("#coverage")
        cov.wait_for(state="visible")
        assert "篇答复" in cov.inner_text() and "营口市" in cov.inner_text() and "2024" in cov.inner_text()
        cov.scroll_into_view_if_needed()
        p.shot("coverage")

        # edit the last question, regenerate
        p.pg.click("#edit-btn")
        p.pg.wait_for_function("() => document.querySelector('#question textarea').value === '营口市对博士每月补贴多少?'")
        assert p.pg.locator("#chat .rag-msg").count() == 0
        p.pg.fill("#question textarea", "营口市对硕士每月补贴多少?")
        p.pg.click("#ask-btn")
        p.wait_answers(1)
        assert "1000元" in p.last()
        p.pg.click("#regen-btn")
        p.pg.wait_for_timeout(500)
        p.wait_answers(1)
        assert p.pg.locator("#chat .rag-msg").count() == 1 and "1000元" in p.last()
        # a vague question: an overview and three precise questions; click one
        p.ask("贷款")
        assert p.pg.locator("#chat .rag-msg").last.locator("a.chip").count() == 3
        p.shot("overview", at="#chat")
        n = p.answers()
        p.pg.locator("#chat .rag-msg").last.locator("a.chip").first.click()
        p.wait_answers(n + 1)
        assert p.pg.locator("#chat .rag-msg").count() == 3


def test_real_local_model_on_loopback_through_the_chat(page, tmp_path):
    """The chat against `python -m llama_cpp.server` with the bundled instruct model: the status names the real
    stage and the model, the first token's time is shown, and what is shown is the model's answer that passed the
    gate or the extractive answer with the model's text behind the toggle."""
    from rag import models

    port = free_port()
    log = tmp_path / "llama-server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(models.assemble("qwen2.5-coder-0.5b")), "--host", "127.0.0.1",
           "--port", str(port), "--n_threads", "2", "--n_ctx", "2048", "--model_alias", "qwen-local"]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, "llama_cpp.server did not start"
            time.sleep(0.5)
        p = page
        with _guard(p, "real-model"):
            p.settings()
            p.pick("#provider", "openai")
            p.pg.fill("#base-url textarea", base)
            p.pg.fill("#model textarea", "qwen-local")
            n = p.answers()
            p.pg.fill("#question textarea", "营口市对博士每月补贴多少?")
            p.pg.click("#ask-btn")
            p.pg.wait_for_function("() => document.querySelector('#chat').innerText.includes('生成中 Generating (qwen-local')", timeout=ANSWER_TIMEOUT)
            p.shot("real-model-generating", at="#chat")
            p.wait_answers(n + 1)
            text = p.last()
            p.shot("real-model-answer", at="#chat")
            assert "首字 first token" in text and "[1]" in text
            if "未采用" in text:  # the gate replaced the model's answer: the extractive one, its figure, the reason
                assert "2000元" in text and "not used" in text
            else:
                assert "2000" in text
            p.pick("#provider", "extractive")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
