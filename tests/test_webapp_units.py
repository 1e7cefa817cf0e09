"""The chat's pure parts (fast, no server): Copy text, Markdown export, the comparison table and its files,
saved conversations, the question helpers (vague topic, did-you-mean, item labels), streaming with Stop."""
from __future__ import annotations

import csv
import io
import threading
import time
import zipfile

import pytest

from rag.webapp.render import (
    comparison_rows, conversation_markdown, copy_text, figures, render_answer, render_sources, render_store, rows_csv, rows_xlsx, turn_markdown,
)
from rag.webapp.state import Turn, conv_choices, delete_conv, empty_store, get_conv, rename_conv, save_conv

SY = {"n": 1, "doc_id": "shenyang", "city": "沈阳市", "issuer": "", "title": "关于进一步推进民营企业科技创新的提案", "section": "一、融资 › 二是落实各项金融政策",
      "text": "落实首贷户贷款贴息政策。截至目前,沈阳市累计增加首贷户719户,拉动首贷群体信贷投放10.33亿元。其他。",
      "quote": "截至目前,沈阳市累计增加首贷户719户,拉动首贷群体信贷投放10.33亿元。", "date": "2023-05-01", "chunk_id": "shenyang#3"}
YK = {"n": 2, "doc_id": "yingkou", "city": "营口市", "issuer": "营口市工信局", "title": "关于促进我市中小企业创新发展的建议提案", "section": "7.着力缓解民营企业融资难题",
      "text": "“三贷中心”累计为自贸区内104户企业18亿元融资需求提供了银企对接通道,其中65户企业获得贷款9.91亿元,享受自贸区贴息政策495.5万元。",
      "quote": "“三贷中心”累计为自贸区内104户企业18亿元融资需求提供了银企对接通道,其中65户企业获得贷款9.91亿元,享受自贸区贴息政策495.5万元。", "date": "", "chunk_id": "yingkou#9"}


def comparative_turn() -> Turn:
    return Turn(question="哪些城市对首贷户给予贴息?", answer={
        "answer": f"沈阳市:{SY['quote']}[1]\n营口市:{YK['quote']}[2]", "abstained": False, "citations": [SY, YK],
        "filters": {"comparative": True}, "timings_ms": {"total": 50.0}, "provider": "extractive", "note": ""})


def test_copy_is_text_with_references_not_html():
    t = Turn(question="营口市对博士每月补贴多少?", answer={"answer": "每月补贴2000元。[1]", "abstained": False, "citations": [YK | {"n": 1}]})
    text = copy_text(t)
    assert "<" not in text and "class=" not in text
    assert text.startswith("每月补贴2000元。[1]")
    assert "参考 References:\n[1] 营口市 · 营口市工信局 · 《关于促进我市中小企业创新发展的建议提案》 · 7.着力缓解民营企业融资难题" in text
    # what the browser copies is this text, escaped inside the hidden store (never the message's HTML)
    store = render_store([t])
    assert 'class="clip-copy" data-turn="0"' in store and "&lt;" not in copy_text(t)


def test_markdown_export_holds_references_and_quotes():
    t = comparative_turn()
    md = turn_markdown(t, 0)
    assert md.startswith("## 1. 哪些城市对首贷户给予贴息?")
    assert "| 城市 | 措施 | 数字/标准 | 来源 |" in md and "| 沈阳市 |" in md
    assert "### 参考 References" in md and "**[1]** 沈阳市" in md and "《关于进一步推进民营企业科技创新的提案》" in md
    assert "> 截至目前,沈阳市累计增加首贷户719户" in md  # the quoted sentence
    assert "`yingkou`" in md
    whole = conversation_markdown([t, Turn(question="营口市对博士每月补贴多少?", answer={"answer": "2000元[1]", "citations": [YK | {"n": 1}]})], "我的对话")
    assert whole.startswith("# 我的对话") and "## 2. 营口市对博士每月补贴多少?" in whole


def test_comparison_rows_one_per_city_with_verbatim_figures():
    t = comparative_turn()
    rows = comparison_rows(t)
    assert [r["城市"] for r in rows] == ["沈阳市", "营口市"]
    by_n = {c["n"]: c for c in t.citations}
    for r in rows:
        figs = [f for f in r["数字/标准"].split("；") if f != "—"]
        assert figs
        for f in figs:  # every figure is written in a passage the row cites
            assert any(f in by_n[n]["text"] for n in r["_nums"]), (f, r)
    assert rows[0]["数字/标准"] == "719户；10.33亿元"
    assert rows[1]["来源"].startswith("[2] 《关于促进我市中小企业创新发展的建议提案》")
    # not comparative -> no table
    assert comparison_rows(Turn(question="x", answer={"answer": "a[1]", "citations": [SY], "filters": {}})) == []
    html = render_answer(t, 0)
    assert '<table class="cmp">' in html and 'href="#src-0-2"' in html


def test_figures_keep_units_and_skip_years():
    assert figures("2023年累计发放12.5万元,占比30%,共5家企业") == ["12.5万元", "30%", "共5家"]
    assert figures("最高100万元的奖励") == ["最高100万元"]


def test_csv_and_xlsx_files():
    rows = comparison_rows(comparative_turn())
    got = list(csv.reader(io.StringIO(rows_csv(rows).lstrip("\ufeff"))))
    assert got[0] == ["城市", "措施", "数字/标准", "来源"] and [r[0] for r in got[1:]] == ["沈阳市", "营口市"]
    z = zipfile.ZipFile(io.BytesIO(rows_xlsx(rows)))
    assert {"[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml"} <= set(z.namelist())
    sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert "沈阳市" in sheet and "495.5万元" in sheet and sheet.count("<row ") == 3


def test_sources_panel_folds_the_other_retrieved_passages():
    t = Turn(question="q", answer={"answer": "a[1]", "citations": [SY]}, retrieved=[
        {"rank": 2, "doc_id": "tianjin", "city": "天津市", "title": "T", "section": "S", "text": "别的段落", "issuer": ""}])
    s = render_sources([t])
    assert 'class="src"' in s and "<details class=\"more-hits\">" in s and "1 more retrieved passage" in s and "别的段落" in s


def test_hints_and_suggestions_are_links():
    t = Turn(question="沈阳市累计增加首贷户多少户?", cities=["营口市"], answer={"answer": "资料中未找到能回答该问题的内容。", "abstained": True, "citations": []},
             hints=[{"kind": "filter", "text": "⚠ 城市筛选为 营口市", "action": "unfilter"}], suggestions=["续贷服务中心投放了多少?"])
    h = render_answer(t, 3)
    assert 'href="#act-unfilter-3"' in h and "城市筛选为 营口市" in h and 'href="#act-ask-3-0"' in h
    assert "> ⚠ 城市筛选为 营口市" in turn_markdown(t)


def test_saved_conversations():
    s = empty_store()
    a = [Turn(question="营口市对博士每月补贴多少?", answer={"answer": "2000元", "citations": []})]
    s = save_conv(s, "c1", a)
    s = save_conv(s, "c2", [Turn(question="哪些城市对首贷户给予贴息?", answer={"answer": "…"})])
    assert get_conv(s, "c1")["title"] == "营口市对博士每月补贴多少?" and s["current"] == "c2"
    assert [cid for _, cid in conv_choices(s)][0] == "c2"
    s = rename_conv(s, "c1", "博士补贴")
    s = save_conv(s, "c1", a + [Turn(question="那沈阳呢?", answer={"answer": "x"})])
    assert get_conv(s, "c1")["title"] == "博士补贴" and len(get_conv(s, "c1")["turns"]) == 2  # a rename sticks
    s = delete_conv(s, "c1")
    assert get_conv(s, "c1") is None and s["current"] == "c2"
    assert save_conv(empty_store(), "c3", [])["convs"] == []  # an empty chat is not kept
    # a turn saved while it was still being answered comes back stopped, never pending forever
    back = Turn.from_dict({"question": "q", "pending": True, "partial": "半句", "unknown_field": 1})
    assert not back.pending and back.stopped and back.partial == "半句"
    assert "已停止" in render_answer(back, 0)


def test_question_helpers():
    from rag.webapp.service import is_vague, item_label, near_miss

    assert is_vague("贷款") and is_vague("人才补贴?")
    assert not is_vague("营口市对博士每月补贴多少?") and not is_vague("沈阳") and not is_vague("loans")
    assert near_miss("郑洲市对首次获评的专精特新企业奖励多少?", ["郑州市", "沈阳市"]) == ("郑洲", "郑州")
    assert near_miss("郑州市奖励多少?", ["郑州市"]) is None
    assert near_miss("天然气补贴多少?", ["天津市"]) is None
    assert item_label("三是设立续贷服务中心，为企业提供服务") == "设立续贷服务中心"
    assert item_label("（二）加大金融支持力度方面") == "加大金融支持力度"


def test_provider_problem_names_the_install_command(monkeypatch):
    import importlib.util

    from rag.webapp import service

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "langchain_openai" else real(name, *a))
    msg = service.provider_problem("openai")
    assert "make install-llm" in msg and "\n" not in msg
    assert service.provider_problem("extractive") == ""


def test_stream_stop_ends_both_sides():
    from rag.webapp.stream import Stopped, stream

    stop = threading.Event()
    sent = []

    def slow(on_token):
        for i in range(100):
            on_token(f"t{i} ")
            sent.append(i)
            time.sleep(0.05)
        return "never"

    got = []
    with pytest.raises(Stopped):
        for item in stream(slow, stop):
            got.append(item)
            if len(got) == 3:
                stop.set()
    time.sleep(0.2)
    assert len(sent) < 20  # the worker stopped at its next token


def test_stream_hands_stage_events_over_at_once():
    from rag.webapp.stream import stream

    def call(on_token):
        on_token({"stage": "generate", "model": "qwen.gguf"})
        on_token("营口")
        on_token({"stage": "verify"})
        return "done"

    items = list(stream(call, every=0))
    assert items[0] == {"stage": "generate", "model": "qwen.gguf"}
    assert "营口" in items and {"stage": "verify"} in items and items[-1] == "done"


def test_status_says_the_real_stage_and_the_first_token():
    from rag.webapp.render import render_answer, stage_label
    from rag.webapp.state import Turn

    t = Turn(question="q", pending=True)
    assert "检索" in stage_label(t) and "检索" in render_answer(t, 0)
    t.stage, t.model = "generate", "qwen2.5-coder-0.5b.gguf"
    assert stage_label(t).startswith("生成") and "qwen2.5-coder-0.5b.gguf" in stage_label(t)
    t.first_token_ms = 2300.0
    assert "首字 first token" in stage_label(t)
    t.partial = "营口市"
    html = render_answer(t, 0)
    assert "生成" in html and "营口市" in html  # the status stays above the streamed text
    t.stage = "verify"
    assert "核对" in render_answer(t, 0)
    t.pending, t.stopped, t.partial = False, True, "营口市对博士"
    assert "已停止" in render_answer(t, 0) and "qwen2.5-coder-0.5b.gguf" in render_answer(t, 0)


def test_a_model_answer_the_gate_rejected_is_behind_a_toggle():
    from rag.webapp.render import render_answer
    from rag.webapp.state import Turn

    llm = {"provider": "llamacpp", "model": "qwen.gguf", "text": "营口市每月2500元。[1]", "shown": "extractive",
           "gate": {"passed": False, "failures": [{"rule": "numbers", "detail": "1 number(s) not in the cited passage: 2500元"}]}}
    a = {"answer": "每月2000元[1]", "abstained": False, "citations": [{"n": 1, "doc_id": "yingkou", "city": "营口市", "title": "", "section": "",
         "text": "每月2000元", "score": 1.0}], "note": "LLM (llamacpp) answer not used: …", "llm": llm, "timings_ms": {"first_token": 2100.0, "total": 9000.0}}
    html = render_answer(Turn(question="q", answer=a), 0)
    assert '<details class="llm-answer">' in html and "2500元" in html and "numbers" in html
    assert "首字 first token" in html
    shown = dict(a, llm=dict(llm, shown="llm"))
    assert "llm-answer" not in render_answer(Turn(question="q", answer=shown), 0)
