"""End-to-end: the real `rag` command in a subprocess (ingest, docs, docs remove, ask)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from conftest import REPLIES, SHARED_CACHE, run_rag
from rag.index import IndexStore

ALL = ["liaoning", "shenyang", "tianjin", "yingkou", "zhengzhou"]
WIDE = {"COLUMNS": "1000"}  # Rich wraps at 80 columns otherwise, which would split messages


def flat(s: str) -> str:
    return " ".join(s.split())


@pytest.fixture(scope="module")
def cli_ingest(tmp_path_factory):
    """`rag ingest data/replies` into a fresh index (the cache makes it embed nothing after the first run)."""
    index = tmp_path_factory.mktemp("cli") / "index"
    p = run_rag("ingest", REPLIES, "--index", index, env=WIDE)
    assert p.returncode == 0, p.stderr
    return index, p


@pytest.fixture(scope="module")
def index(cli_ingest):
    return cli_ingest[0]


@lru_cache(maxsize=None)
def _ask(index: str, question: str, *extra: str):
    p = run_rag("ask", question, "--index", index, "--json", *extra, env=WIDE)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    return json.loads(p.stdout)


def ask(index: Path, question: str, *extra: str) -> dict:
    ans = _ask(str(index), question, *extra)
    check_citations(ans)
    return ans


def check_citations(ans: dict) -> None:
    """Every [n] marker has its citation, every citation is used, numbering is 1..N."""
    ns = [c["n"] for c in ans["citations"]]
    assert ns == list(range(1, len(ns) + 1))
    used = {int(m) for m in re.findall(r"\[(\d+)\]", ans["answer"])}
    assert used == set(ns), (ans["answer"], ns)
    if ans["abstained"]:
        assert ans["citations"] == []


def cities(ans: dict) -> set[str]:
    return {c["city"] for c in ans["citations"]}


# ------------------------------------------------------------------ ingest and docs
def test_ingest_summary(cli_ingest):
    index, p = cli_ingest
    out = flat(p.stdout)
    gen = IndexStore(index).load()
    assert "ingested added 5, updated 0, unchanged 0, removed 0, skipped 0" in out
    assert f"{len(gen.chunks)} chunks" in out
    assert str(index) in out
    assert sorted(gen.docs) == ALL
    again = run_rag("ingest", REPLIES, "--index", index, "--json", env=WIDE)
    assert again.returncode == 0, again.stderr
    rep = json.loads(again.stdout)
    assert sorted(rep["unchanged"]) == ALL
    assert rep["added"] == rep["updated"] == rep["removed"] == rep["skipped"] == []
    assert rep["chunks_embedded"] == 0 and rep["chunks_total"] == len(gen.chunks)


def test_docs_table(index):
    p = run_rag("docs", "--index", index, env=WIDE)
    assert p.returncode == 0, p.stderr
    gen = IndexStore(index).load()
    assert f"5 documents · {len(gen.chunks)} chunks" in p.stdout
    for doc_id, city in [("liaoning", "辽宁省"), ("shenyang", "沈阳市"), ("tianjin", "天津市"), ("yingkou", "营口市"), ("zhengzhou", "郑州市")]:
        assert doc_id in p.stdout and city in p.stdout


def test_docs_json(index):
    p = run_rag("docs", "--index", index, "--json", env=WIDE)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["id"] for r in rows] == ALL
    gen = IndexStore(index).load()
    for r in rows:
        assert {"id", "city", "issuer", "title", "date", "chunks"} <= set(r)
        assert r["chunks"] == sum(c.doc_id == r["id"] for c in gen.chunks) > 0
    by = {r["id"]: r for r in rows}
    assert (by["zhengzhou"]["city"], by["zhengzhou"]["issuer"], by["zhengzhou"]["title"]) == ("郑州市", "郑州市工业和信息化局", "关于促进中小企业健康发展的建议")
    assert by["tianjin"]["date"] == "2021-03-22"
    assert (by["shenyang"]["issuer"], by["shenyang"]["date"]) == ("", "")


@pytest.mark.slow
def test_docs_remove(index, tmp_path):
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    p = run_rag("docs", "remove", "shenyang", "--index", copy, env=WIDE)
    assert p.returncode == 0, p.stderr
    gen = IndexStore(copy).load()
    assert "removed shenyang" in flat(p.stdout) and f"{len(gen.chunks)} chunks left" in flat(p.stdout)
    rows = json.loads(run_rag("docs", "--index", copy, "--json", env=WIDE).stdout)
    assert [r["id"] for r in rows] == ["liaoning", "tianjin", "yingkou", "zhengzhou"]
    # the option before the sub-command works too
    p = run_rag("docs", "--index", copy, "remove", "tianjin", env=WIDE)
    assert p.returncode == 0, p.stderr
    assert sorted(IndexStore(copy).load().docs) == ["liaoning", "yingkou", "zhengzhou"]
    # an unknown id: a clear message, nothing removed
    p = run_rag("docs", "remove", "no-such-doc", "--index", copy, env=WIDE)
    assert p.returncode != 0
    assert "no document 'no-such-doc'" in flat(p.stderr) and "Traceback" not in p.stderr
    assert sorted(IndexStore(copy).load().docs) == ["liaoning", "yingkou", "zhengzhou"]


# ------------------------------------------------------------------ ask
def test_single_fact_with_a_number(index):
    ans = ask(index, "营口市对博士每月补贴多少?")
    assert not ans["abstained"]
    assert "2000元" in ans["answer"]
    assert ans["citations"][0]["doc_id"] == "yingkou"
    assert "2000元" in ans["citations"][0]["text"]


def test_json_schema(index):
    ans = ask(index, "营口市对博士每月补贴多少?")
    assert {"question", "answer", "abstained", "citations", "timings_ms"} <= set(ans)
    assert ans["question"] == "营口市对博士每月补贴多少?"
    assert isinstance(ans["answer"], str) and ans["answer"]
    assert isinstance(ans["abstained"], bool)
    assert isinstance(ans["citations"], list) and ans["citations"]
    for c in ans["citations"]:
        assert {"n", "doc_id", "city", "title", "section", "text", "score"} <= set(c)
        assert isinstance(c["n"], int) and isinstance(c["score"], (int, float))
        assert all(isinstance(c[k], str) for k in ("doc_id", "city", "title", "section", "text"))
        assert c["doc_id"] in ALL and c["text"]
    c = ans["citations"][0]
    assert (c["city"], c["title"]) == ("营口市", "关于促进我市中小企业创新发展的建议提案")
    assert "5.引导企业全面提升竞争力" in c["section"]
    assert isinstance(ans["timings_ms"], dict) and ans["timings_ms"]
    assert all(isinstance(v, (int, float)) and v >= 0 for v in ans["timings_ms"].values())
    assert "total" in ans["timings_ms"]


def test_english_question(index):
    ans = ask(index, "How much monthly living allowance does Yingkou give to doctoral graduates?")
    assert not ans["abstained"]
    assert "2000元" in ans["answer"]
    assert ans["citations"][0]["city"] == "营口市"


def test_english_question_names_figures_only_when_one_is_asked(index):
    """How much … names the figure in the English lead; What … measures … points to the quotes, even when they
    hold figures (What follow-up work … was answered "over 82,000")."""
    ans = ask(index, "How much monthly living allowance does Yingkou give to doctoral graduates?")
    assert "CNY 2,000" in ans["answer"].split("\n")[0]
    ans = ask(index, "What measures does Shenyang take to support first-time borrowers?")
    assert not ans["abstained"] and re.search(r"\d", "".join(re.findall(r"[\u4e00-\u9fff]\S*", ans["answer"])))
    lead = ans["answer"].split("\n")[0]
    assert "the quoted Chinese text below answers this" in lead and not re.search(r"\d(?!\])", lead), lead


def test_comparative_question_cites_both_cities(index):
    ans = ask(index, "哪些城市对首贷户给予贴息?")
    assert not ans["abstained"]
    assert {"沈阳市", "营口市"} <= cities(ans)
    assert "沈阳" in ans["answer"] and "营口" in ans["answer"]


@pytest.mark.slow
def test_city_filter(index):
    q = "如何支持企业上市?"
    free = ask(index, q)
    assert not free["abstained"]
    assert free["citations"][0]["city"] != "沈阳市"  # unfiltered, another city answers first
    sy = ask(index, q, "--city", "沈阳")
    assert not sy["abstained"]
    assert cities(sy) == {"沈阳市"}
    assert sy["filters"]["cities"] == ["沈阳市"]


def _same(a: dict, b: dict) -> None:
    key = lambda x: (x["answer"], x["abstained"], [(c["doc_id"], c["section"], c["text"]) for c in x["citations"]])  # noqa: E731
    assert key(a) == key(b)


@pytest.mark.slow
def test_city_filter_short_and_full_names_are_equivalent(index):
    q = "如何支持企业上市?"
    _same(ask(index, q, "--city", "沈阳"), ask(index, q, "--city", "沈阳市"))
    # a fact question: what is tested is the filter, not the decision on a broad question (如何降低企业用地成本? is
    # now refused at p 0.468 < 0.49 although 辽宁's 用地 paragraph answers it: a false abstention, noted in the README)
    q2 = "对新进入统计部门调查单位库的规上工业企业奖励多少?"
    short, full = ask(index, q2, "--city", "辽宁"), ask(index, q2, "--city", "辽宁省")
    _same(short, full)
    assert short["filters"]["cities"] == full["filters"]["cities"] == ["辽宁省"]
    assert not full["abstained"] and "辽宁省" in cities(full) and "10万元" in full["answer"]


def test_city_filter_on_a_city_without_the_answer_abstains(index):
    ans = ask(index, "营口市对博士每月补贴多少?", "--city", "沈阳")
    assert ans["abstained"] and ans["citations"] == []
    assert "2000元" not in ans["answer"]


@pytest.mark.parametrize(
    "question",
    [
        "广州市对博士有什么补贴?",  # no reply from 广州 in this index
        "天津给引进的博士每月发放多少生活补贴?",  # 天津 states no such amount
        "沈阳“首贷户”贷款贴息按贷款利息的多大比例给予补助?",  # the reply gives no ratio
    ],
)
def test_unanswerable_questions_abstain(index, question):
    ans = ask(index, question)
    assert ans["abstained"] is True
    assert ans["citations"] == []
    assert "未找到" in ans["answer"]


def test_amount_no_reply_states_abstains(index):
    ans = ask(index, "营口市对引进的博士研究生提供多少购房补贴?")
    assert ans["abstained"] is True


def test_human_readable_output(index):
    p = run_rag("ask", "营口市对博士每月补贴多少?", "--index", index, env=WIDE)
    assert p.returncode == 0, p.stderr
    assert "2000元" in p.stdout and "[1]" in p.stdout
    assert "营口市" in p.stdout and "(yingkou)" in p.stdout


# ------------------------------------------------------------------ errors: a message, a non-zero exit, no traceback
def _fails(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    msg = flat(p.stderr)
    for n in needles:
        assert n in msg, (n, msg)


def test_no_question(index):
    _fails(run_rag("ask", "--index", index, env=WIDE), "no question given")
    _fails(run_rag("ask", "   ", "--index", index, env=WIDE), "no question given")


def test_missing_index(tmp_path):
    _fails(run_rag("ask", "营口市对博士每月补贴多少?", "--index", tmp_path / "nowhere", env=WIDE), "no index at", "rag ingest")
    _fails(run_rag("docs", "--index", tmp_path / "nowhere", env=WIDE), "no index at")


@pytest.mark.slow
def test_empty_index(index, tmp_path):
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    p = run_rag("docs", "remove", *ALL, "--index", copy, env=WIDE)
    assert p.returncode == 0, p.stderr
    assert IndexStore(copy).load().chunks == []
    _fails(run_rag("ask", "营口市对博士每月补贴多少?", "--index", copy, env=WIDE), "empty", "rag ingest")


def test_ask_does_not_import_torch_gradio_ray_or_pymilvus(index):
    code = f"""
import json, sys
from typer.testing import CliRunner
from rag.cli import app
r = CliRunner().invoke(app, ["ask", "营口市对博士每月补贴多少?", "--index", {str(index)!r}, "--json"])
assert r.exit_code == 0, r.output
assert "2000元" in r.output, r.output
print(json.dumps([m for m in ("torch", "gradio", "sentence_transformers", "ray", "pymilvus", "milvus_lite") if m in sys.modules]))
"""
    env = {**os.environ, "RAG_EMBED_CACHE": str(SHARED_CACHE)}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ollama_base_url_is_not_ignored(index):
    """`rag ask --llm ollama --base-url URL` talks to URL (it used to read only llm.host and go to :11434)."""
    port = _closed_port()
    url = f"http://127.0.0.1:{port}"
    p = run_rag("ask", "营口市对博士每月补贴多少?", "--index", index, "--json", "--llm", "ollama", "--base-url", url, env=WIDE)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["provider"] == "extractive" and "2000元" in out["answer"]
    assert out["note"].startswith("LLM (ollama) failed: ") and f"({url})" in out["note"], out["note"]
    assert "11434" not in out["note"]


def test_provider_options_are_checked(index):
    p = run_rag("ask", "营口市对博士每月补贴多少?", "--index", index, "--llm", "llamacpp", "--base-url", "http://127.0.0.1:1", env=WIDE)
    _fails(p, "--base-url is not an option of the llamacpp provider", "--model → llm.model_path")
    p = run_rag("ask", "营口市对博士每月补贴多少?", "--index", index, "--model", "qwen-plus", env=WIDE)
    assert p.returncode == 2 and "--model/--base-url need an LLM provider" in flat(p.stderr)
    p = run_rag("ask", "营口市对博士每月补贴多少?", "--index", index, "--llm", "gpt-9", env=WIDE)
    _fails(p, "unknown LLM provider 'gpt-9': choose extractive, openai, ollama, llamacpp")
    p = run_rag("eval", "--index", index, "--llm", "gpt-9", env=WIDE)
    _fails(p, "unknown LLM provider 'gpt-9'")


def test_providers_command(index):
    p = run_rag("providers", "--json", env={**WIDE, "RAG_TEST_NO_KEY": ""})
    assert p.returncode == 0, p.stderr
    rows = {r["name"]: r for r in json.loads(p.stdout)}
    assert list(rows) == ["extractive", "openai", "ollama", "llamacpp"]
    ollama = {o["setting"]: o for o in rows["ollama"]["options"]}
    assert ollama["llm.host"]["flag"] == "--base-url" and ollama["llm.host"]["env"] == "RAG_OLLAMA_HOST"
    assert {o["setting"]: o["flag"] for o in rows["llamacpp"]["options"]}["llm.model_path"] == "--model"
    p = run_rag("providers", env=WIDE)
    assert p.returncode == 0 and "llamacpp" in p.stdout and "RAG_LLM_MODEL_PATH" in p.stdout
    from rag.providers import markdown_table

    assert run_rag("providers", "--markdown").stdout.strip() == markdown_table()
