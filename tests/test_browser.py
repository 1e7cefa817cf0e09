"""The chat app in a real browser (Playwright + system Chromium): ask, sources, citation click, full reply,
feedback, upload through the documents tab, then a question answered from the uploaded reply.

Needs /usr/bin/chromium and a CJK font (`make system-deps` installs both). Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import MORE
from test_app import Server, copy_index

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
ANSWER_TIMEOUT = 120_000  # ms

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(bundled_index, tmp_path_factory):
    d = tmp_path_factory.mktemp("browser")
    srv = Server(copy_index(bundled_index, d / "index"), d / "serve.log").wait()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def page(server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium fonts-wqy-microhei)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
        pg.set_default_timeout(30_000)
        pg.goto(server.url)  # never wait for "networkidle": Gradio keeps connections open
        pg.wait_for_selector("#question textarea")
        yield pg
        browser.close()


def ask(pg, question: str) -> None:
    n = pg.locator("#chat .timings").count() + pg.locator("#chat .rag-error").count()
    pg.fill("#question textarea", question)
    pg.click("#ask-btn")
    pg.wait_for_function(
        "n => document.querySelectorAll('#chat .timings').length + document.querySelectorAll('#chat .rag-error').length > n",
        arg=n, timeout=ANSWER_TIMEOUT,
    )


def last_answer(pg) -> str:
    return pg.locator("#chat .rag-msg").last.inner_text()


def test_chat_sources_and_citation_click(page, server):
    pg = page
    try:
        ask(pg, "哪些城市对首贷户给予贴息?")
        answer = last_answer(pg)
        assert "沈阳" in answer and "营口" in answer, answer
        assert "retrieve" in answer and "total" in answer  # the timings footer
        sources = pg.inner_text("#sources")
        assert "沈阳市" in sources and "营口市" in sources, sources
        assert pg.locator("#sources mark").count() >= 2  # cited sentences highlighted

        # hovering shows the source, clicking selects it in the sources panel
        marker = pg.locator('#chat a.cite[title*="营口"]').first
        title = marker.get_attribute("title")
        assert "营口市" in title and "《" in title
        n = marker.inner_text().strip("[]")
        marker.click()
        sel = pg.locator("#sources .src.selected")
        sel.wait_for()
        pg.wait_for_timeout(800)  # the server re-renders the panel: the selection must survive it
        assert sel.count() == 1
        assert sel.get_attribute("data-n") == n and "营口市" in sel.inner_text()
        assert sel.locator("mark").count() >= 1

        # the full reply at the cited section
        sel.locator(".open-full").click()
        cited = pg.locator("#fulldoc .fd-chunk.cited")
        cited.wait_for(state="visible")
        assert "营口" in pg.inner_text("#fulldoc .fd-head")
        assert pg.locator("#fulldoc .fd-chunk").count() > 5
        assert cited.locator("mark").count() >= 1

        pg.locator("#chat").scroll_into_view_if_needed()
        pg.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=False)

        # thumbs up -> feedback.jsonl
        pg.locator('#chat button[aria-label="Like"], #chat button[aria-label="赞"]').last.click()  # label follows the locale
        fb = server.index_dir / "feedback.jsonl"
        for _ in range(50):
            if fb.exists() and fb.read_text(encoding="utf-8").strip():
                break
            pg.wait_for_timeout(100)
        row = json.loads(fb.read_text(encoding="utf-8").splitlines()[-1])
        assert row["rating"] == "up" and row["question"] == "哪些城市对首贷户给予贴息?" and row["citations"]
    except Exception:
        pg.screenshot(path=str(ARTIFACTS / "failure-chat.png"), full_page=True)
        raise


def test_followup_and_abstention_are_visible(page):
    pg = page
    try:
        ask(pg, "营口市对博士每月补贴多少?")
        assert "2000元" in last_answer(pg)
        ask(pg, "那沈阳呢?")
        msg = last_answer(pg)
        assert "沈阳市对博士每月补贴多少?" in msg, msg  # the rewritten question is shown
        ask(pg, "广州市对小微企业的贷款贴息政策是什么?")
        msg = last_answer(pg)
        assert "未找到" in msg, msg
        assert pg.locator("#chat .rag-msg").last.locator(".abstain-tag").count() == 1
    except Exception:
        pg.screenshot(path=str(ARTIFACTS / "failure-followup.png"), full_page=True)
        raise


def test_upload_then_ask_about_it(page, server):
    pg = page
    try:
        pg.get_by_role("tab", name="文档 Documents").click()
        pg.wait_for_function("() => document.querySelector('#docs-table') && document.querySelector('#docs-table').innerText.includes('yingkou')")
        assert "006_linxiang" not in pg.inner_text("#docs-table")
        pg.set_input_files("#upload input[type=file]", str(MORE / "006_linxiang.txt"))
        pg.locator("#upload").get_by_text("006_linxiang.txt").first.wait_for(timeout=ANSWER_TIMEOUT)  # uploaded to the server (slow on a busy machine)
        pg.click("#upload-btn")
        pg.wait_for_function("() => /已导入|⚠/.test(document.querySelector('#docs-status').innerText)", timeout=ANSWER_TIMEOUT)
        status = pg.inner_text("#docs-status")
        assert "已导入" in status and "006_linxiang" in status, status
        pg.wait_for_function("() => document.querySelector('#docs-table').innerText.includes('006_linxiang')")
        uploaded = list((server.index_dir / "uploads").glob("*/006_linxiang.txt"))
        assert len(uploaded) == 1

        pg.get_by_role("tab", name="问答 Chat").click()
        ask(pg, "临湘市助保贷风险基金增加到多少?")
        answer = last_answer(pg)
        assert "2400万元" in answer, answer
        sources = pg.inner_text("#sources")
        assert "006_linxiang" in sources and "临湘" in sources, sources
        pg.screenshot(path=str(ARTIFACTS / "chat-uploaded.png"), full_page=False)
    except Exception:
        pg.screenshot(path=str(ARTIFACTS / "failure-upload.png"), full_page=True)
        raise
