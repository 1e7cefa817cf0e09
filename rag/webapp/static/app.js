// The chat page's behaviour (run once, as js_on_load of the hidden #cite-bridge; `props` and `trigger` are
// that component's). Markers and actions inside chat messages are plain links (the chat's sanitiser keeps
// class, href and title only):
//   #src-<turn>-<n>                      a citation marker: select that source (server re-renders the panel)
//   #act-copy-<turn>, #act-md-<turn>     copy the answer as text / download it as Markdown (in the browser,
//                                        from the hidden #clip-store the server renders)
//   #act-<name>-<turn>[-<arg>]           anything else goes to the server through the hidden #act-bridge
window.__ragCite = { props: props, trigger: trigger };
if (!window.__ragBound) {
  window.__ragBound = true;
  const phone = function () { return window.matchMedia('(max-width: 820px)').matches; };
  // the class goes on elements inside .contain: Gradio scopes the page's CSS under `.gradio-container .contain`
  const drawer = function (open) {
    window.__ragDrawerOpen = open;
    document.querySelectorAll('#side-col, .drawer-btn').forEach(function (e) { e.classList.toggle('drawer-open', open); });
  };
  window.__ragDrawer = drawer;

  const store = function (sel) {
    const el = document.querySelector('#clip-store ' + sel);
    return el ? el.value : null;
  };
  window.__ragCopy = function (text) {
    window.__ragLastCopy = text;
    const fallback = function () {
      const ta = document.createElement('textarea');
      ta.value = text; ta.setAttribute('readonly', ''); ta.style.position = 'fixed'; ta.style.opacity = '0';
      document.body.appendChild(ta); ta.select();
      try { document.execCommand('copy'); } catch (e) { /* nothing else to try */ }
      ta.remove();
    };
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text).catch(fallback);
    fallback();
    return Promise.resolve();
  };
  window.__ragDownload = function (text, name, type) {
    if (text === null || text === undefined) return;
    window.__ragLastDownload = { name: name, text: text };
    const blob = new Blob([text], { type: type || 'text/markdown;charset=utf-8' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob); a.download = name; a.style.display = 'none';
    document.body.appendChild(a); a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  };
  window.__ragExportAll = function () {
    const stamp = new Date().toISOString().slice(0, 16).replace(/[:T]/g, '-');
    window.__ragDownload(store('textarea.clip-md-all'), 'conversation-' + stamp + '.md');
  };
  const flash = function (a, text) {
    const old = a.textContent;
    a.textContent = text;
    setTimeout(function () { a.textContent = old; }, 1500);
  };

  document.addEventListener('click', function (ev) {
    const t = ev.target && ev.target.closest ? ev.target : null;
    if (!t) return;
    if (t.closest('.drawer-btn')) { ev.preventDefault(); drawer(!window.__ragDrawerOpen); return; }
    const back = t.closest('a.back-to-answer');
    if (back) {
      ev.preventDefault(); drawer(false);
      const msgs = document.querySelectorAll('#chat .rag-msg');
      if (msgs.length) msgs[msgs.length - 1].scrollIntoView({ block: 'start' });
      return;
    }
    const act = t.closest('a.act');
    if (act) {
      const m = /#act-([a-z]+)-(\d+)(?:-(\d+))?$/.exec(act.getAttribute('href') || '');
      if (!m) return;
      ev.preventDefault(); ev.stopPropagation();
      const name = m[1], turn = m[2], arg = m[3] || '';
      if (name === 'copy') {
        const text = store('textarea.clip-copy[data-turn="' + turn + '"]');
        if (text !== null) window.__ragCopy(text).then(function () { flash(act, '✓ 已复制 copied'); });
      } else if (name === 'md') {
        window.__ragDownload(store('textarea.clip-md[data-turn="' + turn + '"]'), 'answer-' + (parseInt(turn, 10) + 1) + '.md');
      } else if (window.__ragAct) {
        const b = window.__ragAct;
        b.props.value = name + ':' + turn + ':' + arg + ':' + Date.now();
        b.trigger('submit');
      }
      return;
    }
    // citation markers: #src-<turn>-<n>; the full-reply links in the sources panel carry data-cite-*
    const a = t.closest('a.cite, [data-cite-n]');
    if (!a) return;
    let turn = a.getAttribute('data-cite-turn'), n = a.getAttribute('data-cite-n');
    if (turn === null || n === null) {
      const m = /#src-(\d+)-(\d+)$/.exec(a.getAttribute('href') || '');
      if (!m) return;
      turn = m[1]; n = m[2];
    }
    ev.preventDefault(); ev.stopPropagation();
    const full = a.getAttribute('data-cite-full') ? 1 : 0;
    document.querySelectorAll('#sources .src.selected').forEach(function (e) { e.classList.remove('selected'); });
    const el = document.querySelector('#sources .src[data-turn="' + turn + '"][data-n="' + n + '"]');
    if (el) { el.classList.add('selected'); el.scrollIntoView({ block: 'nearest' }); }
    if (phone()) drawer(true);
    const b = window.__ragCite;
    b.props.value = turn + ':' + n + ':' + full + ':' + Date.now();
    b.trigger('submit');
  }, true);
}
