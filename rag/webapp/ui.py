"""The Gradio wiring: layout, event handlers, the browser's saved conversations. `build_ui(settings)` returns
a `ChatUI` (the Blocks, the service and the handlers tests call directly); gradio is imported only here.
"""

import logging
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..config import Settings
from . import render
from .render import TABLE_HEADERS, chat_messages, comparison_rows, render_coverage, render_fulldoc, render_sources, render_store
from .service import ALLOWED_UPLOAD, PROVIDERS, ChatService, md_safe, provider_notes, provider_problem, readable
from .state import Turn, conv_choices, delete_conv, empty_store, get_conv, new_id, rename_conv, save_conv, turns_from
from .stream import Stopped, stream

log = logging.getLogger("rag.webapp")

STATIC = Path(__file__).resolve().parent / "static"
EXAMPLES = [
    "哪些城市对首贷户给予贴息?",
    "郑州市对首次获评的专精特新企业奖励多少?",
    "营口市对博士每月补贴多少?",
    "贷款",
    "How much does Zhengzhou award a first-time 'little giant' enterprise?",
]
STORAGE_KEY = "rag-chat-conversations-v1"


def asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def browser_secret(index_dir: Path) -> str:
    """The key that encrypts saved conversations in the browser: stable across restarts (a random key
    would make every saved conversation unreadable after one), kept next to the index."""
    p = Path(index_dir) / ".browser-secret"
    try:
        if p.exists():
            s = p.read_text().strip()
            if len(s) >= 16:
                return s
        p.parent.mkdir(parents=True, exist_ok=True)
        s = secrets.token_urlsafe(24)
        p.write_text(s)
        p.chmod(0o600)
        return s
    except OSError:
        return "rag-" + str(Path(index_dir).resolve())


@dataclass
class ChatUI:
    """What build_ui makes: the page, the service behind it, and the chat handlers (generators of the
    outputs of `ask_outputs`, callable without a browser)."""

    demo: Any
    service: ChatService
    respond: Callable[..., Iterator[tuple]]
    regenerate: Callable[..., Iterator[tuple]]
    stop: Callable[..., tuple]


def build_ui(settings: Settings) -> ChatUI:
    import gradio as gr

    svc = ChatService(settings)
    k_default = settings.retrieval.k
    conc = max(1, int(settings.app.concurrency))
    secret = browser_secret(settings.index_dir)
    cmp_dir = Path(tempfile.mkdtemp(prefix="rag-tables-"))

    # ------------------------------------------------------------ views shared by the handlers
    def table_view(turns: list[Turn], sel: int | None = None):
        """The comparison table of the selected (default: latest) comparative answer, with its downloads."""
        idx = sel if sel is not None and 0 <= sel < len(turns) and turns[sel].comparative else None
        if idx is None:
            idx = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].done and turns[i].comparative), None)
        if idx is None:
            return gr.Group(visible=False), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        rows = comparison_rows(turns[idx])
        stem = f"comparison-{idx + 1}-{int(time.time() * 1000)}"
        csv_p, xlsx_p = cmp_dir / f"{stem}.csv", cmp_dir / f"{stem}.xlsx"
        csv_p.write_text(render.rows_csv(rows), encoding="utf-8")
        xlsx_p.write_bytes(render.rows_xlsx(rows))
        title = f"**对比表 Comparison table** · #{idx + 1} {md_safe(turns[idx].asked)} · 点击列标题排序 click a column header to sort"
        return gr.Group(visible=True), title, render.rows_table(rows), gr.DownloadButton(value=str(csv_p)), gr.DownloadButton(value=str(xlsx_p))

    def full_view(turns: list[Turn], title: str = "", question: Any = None):
        """chatbot, turns, question, sources, fulldoc, clip store, the table group (5 outputs)."""
        return (
            chat_messages(turns), turns, gr.skip() if question is None else question, render_sources(turns),
            render_fulldoc(None, None), render_store(turns, title), *table_view(turns),
        )

    def streaming_view(turns: list[Turn]):
        return (chat_messages(turns), turns, gr.skip(), gr.skip(), gr.skip(), gr.skip(), *([gr.skip()] * 5))

    # ------------------------------------------------------------ asking
    def _run(q: str, turns: list[Turn], cities, k, provider, model, base_url, session: str, title: str = "") -> Iterator[tuple]:
        turns = list(turns or [])
        previous = [t.asked for t in turns if t.answer]
        turn = Turn(question=q, pending=True)
        turns.append(turn)
        yield (chat_messages(turns), turns, "", '<div class="sources-empty">⏳ 检索中 Searching…</div>', render_fulldoc(None, None), gr.skip(), *([gr.skip()] * 5))
        provider = (provider or "extractive").lower()
        stop = svc.cancel_event(session)
        try:
            if provider == "extractive" or provider_problem(provider):
                svc.answer_turn(turn, previous, cities, k, provider, model, base_url)
            else:
                for item in stream(lambda on_token: svc.answer_turn(turn, previous, cities, k, provider, model, base_url, on_token=on_token,
                                                                    on_event=on_token), stop):
                    if isinstance(item, dict):  # a stage begins: the status says what is really running
                        turn.stage = item.get("stage", turn.stage) if item.get("stage") != "first_token" else turn.stage
                        turn.model = item.get("model", turn.model)
                        if item.get("stage") == "first_token":
                            turn.first_token_ms = item.get("ms")
                        yield streaming_view(turns)
                    elif isinstance(item, str):
                        turn.partial = item
                        yield streaming_view(turns)
        except Stopped:
            turn.stopped = True
        except Exception as e:  # noqa: BLE001 - shown in the chat, never a stack trace
            turn.answer = None
            turn.error = readable(e)
        turn.pending = False
        if turn.answer:
            turn.partial = ""
        i = len(turns) - 1
        yield (chat_messages(turns), turns, gr.skip(), render_sources(turns, i), gr.skip(), render_store(turns, title), *table_view(turns, i))

    def respond(message, turns, cities, k, provider, model, base_url, request: gr.Request = None):
        q = (message or "").strip()
        if not q:
            yield tuple(gr.skip() for _ in range(11))
            return
        yield from _run(q, turns_from(turns), cities, k, provider, model, base_url, _session(request))

    def regenerate(turns, cities, k, provider, model, base_url, request: gr.Request = None):
        turns = turns_from(turns)
        if not turns or turns[-1].pending:
            yield tuple(gr.skip() for _ in range(11))
            return
        last = turns.pop()
        yield from _run(last.question, turns, cities, k, provider, model, base_url, _session(request))

    def stop(turns, request: gr.Request = None):
        svc.cancel(_session(request))
        turns = turns_from(turns)
        for t in turns:
            if t.pending:
                t.pending, t.stopped = False, True
        return full_view(turns)

    def edit_last(turns):
        turns = turns_from(turns)
        if not turns:
            return tuple(gr.skip() for _ in range(11))
        last = turns.pop()
        return full_view(turns, question=last.question)

    def on_action(value, turns, cities, k, provider, model, base_url, request: gr.Request = None):
        """Links inside answers: search all replies (drop the city filter), a suggested or corrected question."""
        try:
            name, turn_s, arg = (value or "").split(":")[:3]
            i = int(turn_s)
        except ValueError:
            yield tuple(gr.skip() for _ in range(12))
            return
        turns = turns_from(turns)
        if not (0 <= i < len(turns)):
            yield tuple(gr.skip() for _ in range(12))
            return
        t = turns[i]
        new_cities: Any = gr.skip()
        if name == "unfilter":
            q, cities, new_cities = t.question, [], []
        elif name == "ask" and arg.isdigit() and int(arg) < len(t.suggestions):
            q = t.suggestions[int(arg)]
        elif name == "hint" and arg.isdigit() and int(arg) < len(t.hints) and t.hints[int(arg)].get("question"):
            q = t.hints[int(arg)]["question"]
        else:
            yield tuple(gr.skip() for _ in range(12))
            return
        first = True
        for out in _run(q, turns, cities, k, provider, model, base_url, _session(request)):
            yield (*out, new_cities if first else gr.skip())
            first = False

    def select_source(value, turns):
        try:
            parts = (value or "").split(":")
            turn, n, full = int(parts[0]), int(parts[1]), parts[2] == "1"
        except (ValueError, IndexError):
            return gr.skip(), gr.skip(), gr.skip(), *([gr.skip()] * 5)
        turns = turns_from(turns)
        if not (0 <= turn < len(turns)) or not turns[turn].answer:
            return gr.skip(), gr.skip(), gr.skip(), *([gr.skip()] * 5)
        cit = next((c for c in turns[turn].citations if int(c["n"]) == n), None)
        fd = render_fulldoc(svc.generation(), cit)
        acc = gr.Accordion(open=True) if full else gr.skip()
        tbl = table_view(turns, turn) if turns[turn].comparative else tuple(gr.skip() for _ in range(5))
        return render_sources(turns, turn, n), fd, acc, *tbl

    # ------------------------------------------------------------ feedback
    def on_like(turns, data: gr.LikeData):
        try:
            idx = data.index if isinstance(data.index, int) else data.index[0]
            i = idx // 2
            turns = turns_from(turns)
            if not (0 <= i < len(turns)) or not turns[i].answer:
                return gr.skip(), gr.skip()
            liked = data.liked
            rating = "up" if liked is True else "down" if liked is False else (str(liked) if liked else "cleared")
            fid = svc.record_feedback(turns[i], rating)
            if rating == "down":
                return gr.Row(visible=True), {"turn": i, "id": fid}
            gr.Info("谢谢反馈 · thanks for the feedback")
            return gr.Row(visible=False), {}
        except Exception as e:  # noqa: BLE001
            log.exception("feedback failed")
            gr.Warning(f"feedback not saved: {readable(e)}")
            return gr.skip(), gr.skip()

    def on_comment(pending, turns, comment):
        turns = turns_from(turns)
        i = (pending or {}).get("turn")
        if isinstance(i, int) and 0 <= i < len(turns) and (comment or "").strip():
            svc.record_feedback(turns[i], "down", comment=comment.strip()[:2000], fid=pending.get("id", ""))
            gr.Info("谢谢，意见已保存 · thanks, your comment was saved")
        return gr.Row(visible=False), {}, ""

    # ------------------------------------------------------------ saved conversations (browser storage)
    def save(store, conv_id, turns):
        conv_id = conv_id or new_id()
        s = save_conv(store, conv_id, turns_from(turns))
        return s, conv_id, gr.Dropdown(choices=conv_choices(s), value=conv_id if get_conv(s, conv_id) else None)

    def restore(store):
        """On page load: reopen the conversation that was open (a reload loses nothing)."""
        s = store if isinstance(store, dict) else empty_store()
        conv = get_conv(s, s.get("current", "")) or (s.get("convs") or [None])[0]
        turns = turns_from(conv.get("turns")) if conv else []
        cid = conv["id"] if conv else new_id()
        return (cid, gr.Dropdown(choices=conv_choices(s), value=cid if conv else None), *full_view(turns, conv.get("title", "") if conv else ""))

    def open_conv(store, cid):
        conv = get_conv(store, cid or "")
        if conv is None:
            return (gr.skip(), gr.skip(), *([gr.skip()] * 11))
        s = dict(store)
        s["current"] = cid  # reopened after a reload too
        return (s, cid, *full_view(turns_from(conv.get("turns")), conv.get("title", "")))

    def new_chat(store, conv_id, turns):
        s = save_conv(store, conv_id or new_id(), turns_from(turns))
        cid = new_id()
        s["current"] = cid
        return (s, cid, gr.Dropdown(choices=conv_choices(s), value=None), *full_view([], question=""))

    def rename(store, conv_id, title):
        s = rename_conv(store, conv_id, title)
        return s, gr.Dropdown(choices=conv_choices(s), value=conv_id if get_conv(s, conv_id) else None), ""

    def delete(store, conv_id):
        s = delete_conv(store, conv_id)
        conv = get_conv(s, s["current"])
        cid = conv["id"] if conv else new_id()
        turns = turns_from(conv.get("turns")) if conv else []
        return (s, cid, gr.Dropdown(choices=conv_choices(s), value=cid if conv else None), *full_view(turns))

    # ------------------------------------------------------------ documents
    def refresh_docs(sel_cities=None):
        rows = svc.doc_rows()
        ids = [r[0] for r in rows]
        cities = svc.cities()
        keep = [c for c in (sel_cities or []) if c in cities]
        summary = f"{len(rows)} 篇答复 documents · {sum(r[5] for r in rows)} 段 chunks · index `{md_safe(str(settings.index_dir))}`"
        return rows, gr.Dropdown(choices=ids, value=[]), gr.Dropdown(choices=cities, value=keep), summary, render_coverage(svc.coverage())

    def upload(files, sel_cities, progress=gr.Progress()):
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        try:
            msg = svc.add_files(paths, progress_cb=lambda d, t, desc: progress((d, t), desc=desc))
        except Exception as e:  # noqa: BLE001
            log.exception("upload failed")
            msg = f"⚠ {md_safe(readable(e))}"
        return (msg, None, *refresh_docs(sel_cities))

    def confirm_remove(doc_ids):
        ids = [d for d in (doc_ids or []) if d]
        if not ids:
            return gr.Group(visible=False), "", "⚠ 请选择要删除的文档 · choose a document to remove"
        return gr.Group(visible=True), f"确定从索引中删除 **{md_safe('、'.join(ids))}**？可以撤销。Remove these from the index? You can undo it.", ""

    def remove(doc_ids, sel_cities):
        try:
            msg, undo = svc.remove_with_undo(list(doc_ids or []))
        except Exception as e:  # noqa: BLE001
            log.exception("remove failed")
            msg, undo = f"⚠ {md_safe(readable(e))}", []
        return (msg, gr.Button(visible=bool(undo)), undo, gr.Group(visible=False), *refresh_docs(sel_cities))

    def undo_remove(undo, sel_cities):
        try:
            msg = svc.undo_remove(undo or [])
        except Exception as e:  # noqa: BLE001
            log.exception("undo failed")
            msg = f"⚠ {md_safe(readable(e))}"
        return (msg, gr.Button(visible=False), [], *refresh_docs(sel_cities))

    def provider_note(provider):
        return provider_notes((provider or "extractive").lower(), svc.settings)

    def api_ask(question: str, cities: list[str] | None = None, k: int = 0, provider: str = "extractive", history: list[str] | None = None) -> dict:
        """Answer one question (JSON): answer, abstained, citations, timings_ms, rewritten_question …"""
        try:
            ans = svc.ask(question, list(history or []), cities or None, k or None, provider or "extractive")
            return ans.to_dict()
        except Exception as e:  # noqa: BLE001
            return {"question": question, "error": readable(e), "answer": "", "abstained": True, "citations": []}

    # ------------------------------------------------------------ layout
    provider_default = (settings.llm.provider or "extractive").lower()
    provider_default = provider_default if provider_default in PROVIDERS else "extractive"
    with gr.Blocks(title="政府答复问答 · Cited answers from government replies") as demo:
        turns_st = gr.State([])
        conv_id = gr.State("")
        store = gr.BrowserState(empty_store(), storage_key=STORAGE_KEY, secret=secret)
        undo_st = gr.State([])
        fb_st = gr.State({})
        gr.Markdown(
            "## 政府答复问答 · Cited answers from government replies on SMEs\n"
            "答案只引用答复原文，每句后标注来源 [n]：悬停查看来源，点击在来源面板中显示（手机上点右下角「来源」按钮）。"
            " Answers quote the replies; hover a marker [n] for its source, click it to show the passage in the sources panel"
            " (on a phone: the Sources button)."
        )
        with gr.Tabs():
            with gr.Tab("问答 Chat", id="chat-tab"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=320, elem_id="main-col"):
                        chatbot = gr.Chatbot(
                            elem_id="chat", label="对话 Chat", show_label=False, height=560, latex_delimiters=[],
                            feedback_options=("Like", "Dislike"), buttons=[],
                            placeholder="问一个关于各地中小企业政策答复的问题。Ask about the replies.",
                        )
                        with gr.Row(visible=False, elem_id="fb-comment") as fb_row:
                            fb_text = gr.Textbox(show_label=False, scale=5, placeholder="哪里不对？(可选) What was wrong? (optional)", elem_id="fb-text")
                            fb_send = gr.Button("提交 Send", size="sm", scale=1, elem_id="fb-send")
                        with gr.Row():
                            question = gr.Textbox(
                                elem_id="question", show_label=False, scale=5, lines=1, max_lines=4, autofocus=True,
                                placeholder="例如：营口市对博士每月补贴多少?  (Enter 发送 / to send)",
                            )
                            ask_btn = gr.Button("提问 Ask", variant="primary", scale=1, elem_id="ask-btn", min_width=70)
                            stop_btn = gr.Button("■ 停止 Stop", variant="stop", scale=1, elem_id="stop-btn", min_width=70, size="md")
                        with gr.Row(elem_id="turn-tools"):
                            regen_btn = gr.Button("↻ 重新生成 Regenerate", size="sm", elem_id="regen-btn")
                            edit_btn = gr.Button("✏ 修改上一问 Edit last", size="sm", elem_id="edit-btn")
                            new_btn = gr.Button("＋ 新对话 New chat", size="sm", elem_id="new-btn")
                            export_btn = gr.Button("⬇ 导出对话 Export (.md)", size="sm", elem_id="export-btn")
                        gr.Examples(EXAMPLES, inputs=[question], label="示例问题 Examples")
                        with gr.Group(visible=False, elem_id="cmp-group") as cmp_group:
                            cmp_title = gr.Markdown(elem_id="cmp-title")
                            cmp_df = gr.Dataframe(headers=TABLE_HEADERS, datatype=["str"] * 4, interactive=False, wrap=True, elem_id="cmp-table", max_height=420,
                                                  column_widths=["11%", "47%", "20%", "22%"])
                            with gr.Row():
                                csv_btn = gr.DownloadButton("⬇ CSV", size="sm", elem_id="cmp-csv")
                                xlsx_btn = gr.DownloadButton("⬇ XLSX", size="sm", elem_id="cmp-xlsx")
                        with gr.Accordion("对话记录 Saved conversations", open=False, elem_id="convs"):
                            conv_dd = gr.Dropdown(choices=[], value=None, label="打开 Open (saved in this browser)", elem_id="conv-list")
                            with gr.Row():
                                rename_tb = gr.Textbox(show_label=False, placeholder="新名称 New name", scale=3, elem_id="conv-name")
                                rename_btn = gr.Button("重命名 Rename", size="sm", scale=1, elem_id="conv-rename")
                                delete_btn = gr.Button("删除 Delete", size="sm", variant="stop", scale=1, elem_id="conv-delete")
                        with gr.Accordion("设置 Settings", open=False, elem_id="settings"):
                            city_dd = gr.Dropdown(
                                choices=svc.cities(), value=[], multiselect=True, label="城市/省份 City / province filter",
                                info="空 = 全部 · empty = all (places named in the question are used otherwise)", elem_id="cities",
                            )
                            k_slider = gr.Slider(
                                1, 20, value=k_default, step=1, label="段落数 Passages (k)", elem_id="k",
                                info="检索的段落数：来源面板先列引用的段落，其余折叠在下面 · passages retrieved: the cited ones first, the rest folded",
                            )
                            provider_dd = gr.Dropdown(
                                list(PROVIDERS), value=provider_default, label="回答方式 Answer provider", elem_id="provider",
                                info=f"API keys only from the environment (${settings.llm.api_key_env}); LLM answers are checked against the passages",
                            )
                            provider_md = gr.Markdown(provider_notes(provider_default, settings), elem_id="provider-note")
                            model_tb = gr.Textbox(value=settings.llm.model, label="模型 Model (name; for llamacpp a bundled model or .gguf path)", elem_id="model",
                                                  placeholder="empty = the provider's default (rag providers)")
                            base_tb = gr.Textbox(value=settings.llm.base_url, label="Base URL (OpenAI-compatible endpoint / ollama host)", elem_id="base-url")
                        with gr.Accordion("已索引 Coverage: which replies are indexed", open=False, elem_id="coverage-acc"):
                            coverage = gr.HTML(render_coverage(svc.coverage()), elem_id="coverage")
                    with gr.Column(scale=2, min_width=320, elem_id="side-col"):
                        sources = gr.HTML(render_sources([]), elem_id="sources", label="来源 Sources")
                        with gr.Accordion("全文 Full reply", open=False, elem_id="fulldoc-acc") as fulldoc_acc:
                            fulldoc = gr.HTML(render_fulldoc(None, None), elem_id="fulldoc")
                bridge = gr.HTML("", elem_id="cite-bridge", js_on_load=asset("app.js"), html_template="")
                act_bridge = gr.HTML("", elem_id="act-bridge", js_on_load=asset("act_bridge.js"), html_template="")
                clip = gr.HTML(render_store([]), elem_id="clip-store")
                gr.HTML('<button class="drawer-btn" type="button">☰ 来源 Sources</button>', elem_id="drawer-wrap")
            with gr.Tab("文档 Documents", id="docs-tab"):
                docs_summary = gr.Markdown(elem_id="docs-summary")
                docs_table = gr.Dataframe(
                    headers=["id", "city", "issuer", "title", "date", "chunks"], datatype=["str", "str", "str", "str", "str", "number"],
                    interactive=False, elem_id="docs-table", wrap=True, label="已索引的答复 Indexed replies",
                )
                with gr.Row():
                    with gr.Column():
                        upload_files = gr.File(
                            file_count="multiple", file_types=list(ALLOWED_UPLOAD), label=f"上传答复 Upload replies ({' '.join(ALLOWED_UPLOAD)}, ≤ {settings.app.upload_max_mb} MB)",
                            elem_id="upload",
                        )
                        upload_btn = gr.Button("导入 Add to index", variant="primary", elem_id="upload-btn")
                    with gr.Column():
                        remove_dd = gr.Dropdown(choices=[], multiselect=True, label="删除文档 Remove documents", elem_id="remove-ids")
                        remove_btn = gr.Button("删除 Remove…", variant="stop", elem_id="remove-btn")
                        with gr.Group(visible=False, elem_id="remove-confirm") as confirm_group:
                            confirm_md = gr.Markdown(elem_id="remove-confirm-text")
                            with gr.Row():
                                confirm_btn = gr.Button("确认删除 Yes, remove", variant="stop", size="sm", elem_id="remove-yes")
                                cancel_btn = gr.Button("取消 Cancel", size="sm", elem_id="remove-no")
                        undo_btn = gr.Button("↩ 撤销删除 Undo remove", visible=False, elem_id="undo-btn")
                        refresh_btn = gr.Button("刷新 Refresh", size="sm")
                docs_status = gr.Markdown(elem_id="docs-status")

        # ------------------------------------------------------------ events
        table_out = [cmp_group, cmp_title, cmp_df, csv_btn, xlsx_btn]
        view_out = [chatbot, turns_st, question, sources, fulldoc, clip, *table_out]
        settings_in = [city_dd, k_slider, provider_dd, model_tb, base_tb]
        save_in, save_out = [store, conv_id, turns_st], [store, conv_id, conv_dd]
        qa = {"concurrency_id": "qa", "concurrency_limit": conc, "api_visibility": "private"}
        private = {"api_visibility": "private"}
        asks = []
        for ev in (question.submit, ask_btn.click):
            e = ev(respond, [question, turns_st, *settings_in], view_out, **qa)
            e.then(save, save_in, save_out, queue=False, **private)
            asks.append(e)
        e = regen_btn.click(regenerate, [turns_st, *settings_in], view_out, **qa)
        e.then(save, save_in, save_out, queue=False, **private)
        asks.append(e)
        e = act_bridge.submit(on_action, [act_bridge, turns_st, *settings_in], [*view_out, city_dd], **qa)
        e.then(save, save_in, save_out, queue=False, **private)
        asks.append(e)
        stop_btn.click(stop, [turns_st], view_out, cancels=asks, queue=False, **private).then(save, save_in, save_out, queue=False, **private)
        edit_btn.click(edit_last, [turns_st], view_out, queue=False, **private).then(save, save_in, save_out, queue=False, **private)
        export_btn.click(None, None, None, js="() => { window.__ragExportAll && window.__ragExportAll(); }")
        new_btn.click(new_chat, save_in, [store, conv_id, conv_dd, *view_out], queue=False, **private)
        conv_dd.input(open_conv, [store, conv_dd], [store, conv_id, *view_out], queue=False, **private)
        rename_btn.click(rename, [store, conv_id, rename_tb], [store, conv_dd, rename_tb], queue=False, **private)
        rename_tb.submit(rename, [store, conv_id, rename_tb], [store, conv_dd, rename_tb], queue=False, **private)
        delete_btn.click(delete, [store, conv_id], [store, conv_id, conv_dd, *view_out], queue=False, **private)
        bridge.submit(select_source, [bridge, turns_st], [sources, fulldoc, fulldoc_acc, *table_out], queue=False, **private).then(
            None, None, None, js=asset("scroll.js")
        )
        chatbot.like(on_like, [turns_st], [fb_row, fb_st], **private)
        fb_send.click(on_comment, [fb_st, turns_st, fb_text], [fb_row, fb_st, fb_text], **private)
        fb_text.submit(on_comment, [fb_st, turns_st, fb_text], [fb_row, fb_st, fb_text], **private)
        chatbot.clear(new_chat, save_in, [store, conv_id, conv_dd, *view_out], queue=False, **private)
        provider_dd.change(provider_note, [provider_dd], [provider_md], queue=False, **private)
        docs_out = [docs_table, remove_dd, city_dd, docs_summary, coverage]
        ingest_q = {"concurrency_id": "ingest", "concurrency_limit": 1, "api_visibility": "private"}
        upload_btn.click(upload, [upload_files, city_dd], [docs_status, upload_files, *docs_out], **ingest_q)
        remove_btn.click(confirm_remove, [remove_dd], [confirm_group, confirm_md, docs_status], queue=False, **private)
        cancel_btn.click(lambda: gr.Group(visible=False), None, [confirm_group], queue=False, **private)
        confirm_btn.click(remove, [remove_dd, city_dd], [docs_status, undo_btn, undo_st, confirm_group, *docs_out], **ingest_q)
        undo_btn.click(undo_remove, [undo_st, city_dd], [docs_status, undo_btn, undo_st, *docs_out], **ingest_q)
        refresh_btn.click(refresh_docs, [city_dd], docs_out, queue=False, **private)
        demo.load(restore, [store], [conv_id, conv_dd, *view_out], queue=False, **private)
        demo.load(refresh_docs, [city_dd], docs_out, queue=False, **private)
        gr.api(api_ask, api_name="ask", concurrency_id="qa", concurrency_limit=conc)

    demo.queue(default_concurrency_limit=conc, max_size=None)
    return ChatUI(demo=demo, service=svc, respond=respond, regenerate=regenerate, stop=stop)


def _session(request) -> str:
    return getattr(request, "session_hash", None) or "-"


def build_app(settings: Settings):
    """The Gradio Blocks of the chat app (for embedding; `build_ui` gives the handlers too)."""
    return build_ui(settings).demo


__all__ = ["build_ui", "build_app", "ChatUI", "EXAMPLES", "asset"]
