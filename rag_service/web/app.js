// The page at /: a chat with the documents. Each thread's questions go to /v1/ask with the
// thread so far as history, answers stream in with their citations and passages, and threads are
// kept in this browser (localStorage). A second view lists the collections and the documents of
// the chosen one, uploads (with progress, then the document job's progress) and deletes them.
// No dependencies and no build step. Nothing from the server is ever parsed as HTML: the
// Markdown renderer below and the tables build DOM nodes and set only textContent, so an answer,
// a passage or a file name cannot inject markup or script (the Content-Security-Policy forbids
// inline script as well).
"use strict";

const TEXT = {
  en: {
    title: "Ask your documents", questionLabel: "Question", ask: "Ask", close: "Close",
    newThread: "New thread", threads: "Threads", conversation: "Conversation",
    examplesHeading: "Try asking", noThreads: "No threads yet.", you: "You asked: ",
    deleteThreadLabel: (t) => `Delete the thread “${t}”`,
    confirmDeleteThread: (t) => `Delete the thread “${t}” from this browser?`,
    searchedAs: (q) => `Searched as: ${q}`, passagesCount: (n) => `Retrieved passages (${n})`, keyLabel: "API key", keySave: "Use key",
    keyNeeded: "This server needs an API key.", keyBad: "That key was not accepted.",
    index: (g, s, c) => `Index generation ${g} · ${s} sources · ${c} chunks`,
    noIndex: "No index is served yet: run `rag reindex`.",
    searching: "Searching…", writing: "Writing the answer…",
    done: (ms) => `Answered in ${ms} ms.`,
    open: "Show in document", score: "score", cite: (n) => `Citation ${n}: open the quote`,
    failed: (m) => `Failed: ${m}`, generation: (g) => `generation ${g}`,
    collectionLabel: "Collection", deleteCollection: "Delete collection",
    newCollectionLabel: "New collection", create: "Create",
    nameRule: "Up to 64 characters in any script; no / or \\, no leading dot, no spaces at "
      + "either end; names differing only in case are the same name.",
    badName: "That is not a valid collection name:",
    notCreated: (n, c) => `“${n}” was not created, so uploading is paused: files would go to `
      + `“${c}”.`,
    uploadInto: (c) => `Upload into “${c}”`,
    gone: (n) => `The collection “${n}” no longer exists.`,
    readOnly: (n) => `“${n}” mirrors a folder of the server, which is not written from this `
      + "page: create a collection to upload.",
    created: (n) => `Created the collection “${n}”.`,
    existed: (n) => `The collection “${n}” already exists.`,
    confirmDeleteCollection: (n) =>
      `Delete the collection “${n}”, its index and its uploaded documents?`,
    deletedCollection: (n) => `Deleted the collection “${n}”.`,
    option: (c) => `${c.name} (${c.documents} documents)`,
    empty: "Nothing is indexed in this collection yet: upload documents under Documents.",
    documents: "Documents", colPath: "Document", colChunks: "Chunks", colBytes: "Bytes",
    colEncoding: "Encoding", colIndexed: "Indexed", colActions: "Actions",
    docsMeta: (n, kind, count) => `${count} documents in “${n}” · ${kind === "managed"
      ? "uploaded through this service" : "mirrored from a folder of the server"}`,
    noDocs: "No documents yet.", unreadable: (e) => `Could not be read: ${e}`,
    deleteDoc: "Delete", deleteDocLabel: (p) => `Delete ${p}`,
    confirmDeleteDoc: (p, n) => `Delete “${p}” from the collection “${n}”?`,
    dropHere: (n) => `Drop files here to add them to “${n}”, or choose them:`,
    chooseFiles: "Files to upload",
    formats: "Markdown, text, HTML, PDF, Word, PowerPoint, Excel, CSV or EPUB; several at once.",
    sending: (sent, total) => `Uploading: ${size(sent)} of ${size(total)} sent.`,
    state: {
      queued: "Queued", running: "Indexing", done: "Done", failed: "Failed", cancelled: "Cancelled",
    },
    embedded: (e, t) => `${e} of ${t} chunks embedded`,
    waiting: (w) => `waiting: ${w}`,
    summary: (r) => `${r.added} added, ${r.updated} updated, ${r.unchanged} unchanged, `
      + `${r.deleted} deleted; ${r.chunks.embedded} chunks embedded.`,
    notRead: (p, e) => `${p} could not be read: ${e}`,
    jobFailed: (e) => `The job failed: ${e}`,
    requestId: (id) => `request id ${id}`,
  },
  zh: {
    title: "向文档提问", questionLabel: "问题", ask: "提问", close: "关闭",
    newThread: "新对话", threads: "对话", conversation: "对话内容", examplesHeading: "可以这样问",
    noThreads: "还没有对话。", you: "你的问题：", deleteThreadLabel: (t) => `删除对话“${t}”`,
    confirmDeleteThread: (t) => `从此浏览器中删除对话“${t}”？`,
    searchedAs: (q) => `检索所用的问题：${q}`, passagesCount: (n) => `检索到的段落（${n}）`, keyLabel: "API 密钥", keySave: "使用密钥",
    keyNeeded: "此服务需要 API 密钥。", keyBad: "密钥无效。",
    index: (g, s, c) => `索引第 ${g} 代 · ${s} 个文档 · ${c} 个片段`,
    noIndex: "尚无可用索引：请运行 `rag reindex`。",
    searching: "检索中…", writing: "正在生成回答…",
    done: (ms) => `用时 ${ms} 毫秒。`,
    open: "在文档中查看", score: "得分", cite: (n) => `引用 ${n}：查看原文`,
    failed: (m) => `失败：${m}`, generation: (g) => `第 ${g} 代`,
    collectionLabel: "文档集", deleteCollection: "删除文档集",
    newCollectionLabel: "新建文档集", create: "创建",
    nameRule: "最多 64 个字符，可用任何文字；不含 / 或 \\，不以点开头，首尾无空格；"
      + "仅大小写不同的名称视为同名。",
    badName: "文档集名称不符合规则：",
    notCreated: (n, c) => `未能创建“${n}”，上传已暂停：否则文件会进入“${c}”。`,
    uploadInto: (c) => `上传到“${c}”`,
    gone: (n) => `文档集“${n}”已不存在。`,
    readOnly: (n) => `“${n}”镜像服务器上的文件夹，不能从本页写入：请新建文档集再上传。`,
    created: (n) => `已创建文档集“${n}”。`,
    existed: (n) => `文档集“${n}”已存在。`,
    confirmDeleteCollection: (n) => `删除文档集“${n}”及其索引和上传的文档？`,
    deletedCollection: (n) => `已删除文档集“${n}”。`,
    option: (c) => `${c.name}（${c.documents} 个文档）`,
    empty: "此文档集尚未索引任何内容：请在“文档”中上传。",
    documents: "文档", colPath: "文档", colChunks: "片段", colBytes: "字节",
    colEncoding: "编码", colIndexed: "索引时间", colActions: "操作",
    docsMeta: (n, kind, count) => `“${n}”中共 ${count} 个 · ${kind === "managed"
      ? "通过本服务上传" : "镜像服务器上的文件夹"}`,
    noDocs: "还没有文档。", unreadable: (e) => `无法读取：${e}`,
    deleteDoc: "删除", deleteDocLabel: (p) => `删除 ${p}`,
    confirmDeleteDoc: (p, n) => `从文档集“${n}”中删除“${p}”？`,
    dropHere: (n) => `将文件拖放到这里以加入“${n}”，或选择文件：`, chooseFiles: "要上传的文件",
    formats: "Markdown、文本、HTML、PDF、Word、PowerPoint、Excel、CSV 或 EPUB；可一次选择多个。",
    sending: (sent, total) => `上传中：已发送 ${size(sent)}，共 ${size(total)}。`,
    state: {
      queued: "排队中", running: "索引中", done: "完成", failed: "失败", cancelled: "已取消",
    },
    embedded: (e, t) => `已嵌入 ${e} / ${t} 个片段`,
    waiting: (w) => `等待：${w}`,
    summary: (r) => `新增 ${r.added}，更新 ${r.updated}，未变 ${r.unchanged}，`
      + `删除 ${r.deleted}；嵌入 ${r.chunks.embedded} 个片段。`,
    notRead: (p, e) => `${p} 无法读取：${e}`,
    jobFailed: (e) => `任务失败：${e}`,
    requestId: (id) => `请求编号 ${id}`,
  },
};
// The browser's first preferred language decides: Chinese for any zh-*, English otherwise.
const LANG = /^zh/i.test(navigator.languages?.[0] || navigator.language || "") ? "zh" : "en";
const T = TEXT[LANG];
const $ = (id) => document.getElementById(id);
const size = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB`
  : `${(n / 1048576).toFixed(1)} MiB`);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

// --- API calls, with the key (if any) from sessionStorage --------------------------------
class NeedKey extends Error {}

// A non-2xx answer: its problem body's detail and request id, shown as they are.
class ApiError extends Error {
  constructor(status, detail, requestId) {
    super(requestId ? `${detail} (${T.requestId(requestId)})` : detail);
    this.status = status;
  }
}

function keyHeaders() {
  const key = sessionStorage.getItem("rag-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function headers() {
  return { "Content-Type": "application/json", ...keyHeaders() };
}

// The error for a failed response: 401 opens the key prompt; otherwise the problem's detail
// (for a 422 it names the first invalid field) with its request id.
function problem(status, statusText, body, requestId) {
  if (status === 401) {
    $("key-form").hidden = false;
    return new NeedKey(sessionStorage.getItem("rag-key") ? T.keyBad : T.keyNeeded);
  }
  let detail = statusText || String(status);
  let id = requestId;
  try {
    const p = JSON.parse(body);
    detail = p.detail || detail;
    id = p.request_id || id;
  } catch { /* not JSON */ }
  return new ApiError(status, detail, id);
}

async function call(path, init = {}) {
  const response = await fetch(path, { ...init, headers: headers() });
  if (!response.ok) {
    throw problem(response.status, response.statusText, await response.text(),
      response.headers.get("x-request-id"));
  }
  return response;
}

const enc = (name) => encodeURIComponent(name);
const encPath = (path) => path.split("/").map(encodeURIComponent).join("/");

// --- A small Markdown renderer: paragraphs, headings, lists, fenced code, `code`, **bold**,
// *emphasis*, and citation markers [n] (the i-th marker is the answer's i-th mark). ----------
const INLINE = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*)|(\[\d+\])/g;

function inline(parent, text, cite) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    parent.append(text.slice(last, m.index));
    const [token] = m;
    if (m[1]) parent.append(el("code", token.slice(1, -1)));
    else if (m[2]) parent.append(el("strong", token.slice(2, -2)));
    else if (m[3]) parent.append(el("em", token.slice(1, -1)));
    else parent.append(cite(token));
    last = m.index + token.length;
  }
  parent.append(text.slice(last));
}

function renderMarkdown(target, source, cite) {
  target.replaceChildren();
  const lines = source.split("\n");
  let list = null;
  let para = [];
  const flush = () => {
    if (para.length) { const p = el("p"); inline(p, para.join("\n"), cite); target.append(p); }
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^\s*```/.test(line)) {
      flush(); list = null;
      const code = [];
      while (++i < lines.length && !/^\s*```/.test(lines[i])) code.push(lines[i]);
      const pre = el("pre"); pre.append(el("code", code.join("\n"))); target.append(pre);
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    const item = /^\s*(?:[-*+]|(\d+)[.)])\s+(.*)$/.exec(line);
    if (heading) {
      flush(); list = null;
      const h = el(`h${Math.min(6, heading[1].length + 2)}`); inline(h, heading[2], cite);
      target.append(h);
    } else if (item) {
      flush();
      const kind = item[1] ? "OL" : "UL";
      if (!list || list.tagName !== kind) { list = el(kind.toLowerCase()); target.append(list); }
      const li = el("li"); inline(li, item[2], cite); list.append(li);
    } else if (!line.trim()) {
      flush(); list = null;
    } else {
      list = null; para.push(line);
    }
  }
  flush();
}

// --- The document view: the cited passage with the quote highlighted ----------------------
async function openDocument(collection, source, start, end) {
  const q = new URLSearchParams({ collection, start, end });
  const path = `/v1/documents/${encPath(source)}?${q}`;
  const doc = await (await call(path)).json();
  $("doc-title").textContent = doc.title || doc.source;
  $("doc-meta").textContent = `${doc.source} · ${T.generation(doc.generation)}`;
  const mark = el("mark", doc.quote);
  mark.id = "quote";
  $("doc-text").replaceChildren(doc.text.slice(0, doc.start).replace(/^\n+/, ""), mark,
    doc.text.slice(doc.end));
  $("doc").showModal();
  mark.scrollIntoView({ block: "center" });
}

// --- Asking: POST /v1/ask as Server-Sent Events --------------------------------------------
async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const name = /^event: (.*)$/m.exec(block)?.[1] || "message";
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (data) yield [name, JSON.parse(data)];
    }
  }
}

function showPassages(list, passages, collection) {
  list.replaceChildren();
  for (const p of passages) {
    const li = el("li");
    const head = el("div");
    head.append(el("span", p.title || p.source, "src"),
      el("span", ` · ${p.source} · ${T.score} ${p.score.toFixed(3)}`, "meta"));
    const open = el("button", T.open);
    open.type = "button";
    open.addEventListener("click",
      () => openDocument(collection, p.source, p.start, p.end).catch(fail));
    // A passage is a piece of a document, often Markdown: its headings and lists render as
    // such (its [n] are the document's own text, not this answer's citations).
    const text = el("div", undefined, "txt");
    renderMarkdown(text, p.text, (token) => token);
    li.append(head, text, open);
    list.append(li);
  }
}

function citeButton(done, collection) {
  let i = 0;
  return (token) => {
    const mark = done?.marks[i++];
    if (!mark) return token;
    const c = done.citations[mark.citation];
    const button = el("button", token, "cite");
    button.type = "button";
    button.title = `${c.title} — ${c.quote}`;
    button.setAttribute("aria-label", T.cite(c.n));
    button.dataset.quote = c.quote;
    button.addEventListener("click",
      () => openDocument(collection, c.source, c.start, c.end).catch(fail));
    return button;
  };
}

function fail(error) {
  $("status").textContent = error instanceof NeedKey ? error.message : T.failed(error.message);
}

// A turn on screen: the question (a heading, to move between turns), then the answer as it
// streams, or the refusal (said once, in its note), and the passages it was drawn from.
function turnView(question) {
  const li = el("li", undefined, "turn");
  const view = {
    li, searched: el("p", undefined, "meta"), refusal: el("div", undefined, "refusal"),
    answer: el("div", undefined, "answer"), error: el("p", undefined, "error"),
    sources: el("details", undefined, "sources"), passages: el("ol", undefined, "passages"),
  };
  const q = el("h3", undefined, "q");
  q.append(el("span", T.you, "sr-only"), question);
  view.refusal.setAttribute("role", "note");
  view.answer.setAttribute("aria-live", "polite");
  view.sources.append(el("summary"), view.passages);
  for (const part of [view.searched, view.refusal, view.error, view.sources]) part.hidden = true;
  li.append(q, view.searched, view.refusal, view.answer, view.error, view.sources);
  return view;
}

function showSources(view, turn) {
  view.searched.textContent = T.searchedAs(turn.standalone);
  view.searched.hidden = turn.standalone.trim() === turn.q.trim();
  view.sources.firstChild.textContent = T.passagesCount(turn.passages.length);
  view.sources.hidden = !turn.passages.length;
  showPassages(view.passages, turn.passages, turn.collection);
}

function showAnswer(view, turn) {
  showSources(view, turn);
  if (turn.answerable) renderMarkdown(view.answer, turn.answer, citeButton(turn, turn.collection));
  else {
    view.answer.replaceChildren();
    view.refusal.textContent = turn.answer;
    view.refusal.hidden = false;
  }
}

// --- Threads: kept in this browser (localStorage), newest first ---------------------------
// A thread is { id, title, updated, turns }; a turn keeps what showing it again needs: the
// question, what was searched, the passages, the answer with its citations and marks, and the
// collection it was asked in (its citations open there, whatever is chosen later).
const THREADS = "rag-threads";
const MAX_THREADS = 50;
const HISTORY_TURNS = 20; // /v1/ask takes at most 20 earlier messages
let threads = loadThreads();
let thread = threads.find((t) => t.id === sessionStorage.getItem("rag-thread")) || null;
let asking = false;
// Deleted here while one of their answers was still coming: that answer must not bring them back.
const deleted = new Set();

function loadThreads() {
  try {
    return JSON.parse(localStorage.getItem(THREADS) || "[]");
  } catch {
    return [];
  }
}

// Writes the threads, newest first, merged by the callers with what another tab may have
// written meanwhile; past the browser's quota the oldest threads go.
function store(list) {
  list.sort((a, b) => b.updated - a.updated);
  list.length = Math.min(list.length, MAX_THREADS);
  for (;;) {
    try {
      localStorage.setItem(THREADS, JSON.stringify(list));
      return list;
    } catch {
      if (!list.length) return list; // storage is off (a private window): threads last a visit
      list.pop();
    }
  }
}

function keepThread(t) {
  t.updated = Date.now();
  threads = store([t, ...loadThreads().filter((x) => x.id !== t.id)]);
  showThreads();
}

function showThreads() {
  const items = threads.map((t) => {
    const li = el("li");
    const open = el("button", t.title, "open");
    open.type = "button";
    if (t.id === thread?.id) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => openThread(t.id));
    const remove = el("button", "×", "quiet remove");
    remove.type = "button";
    remove.title = T.deleteThreadLabel(t.title);
    remove.setAttribute("aria-label", T.deleteThreadLabel(t.title));
    remove.addEventListener("click", () => deleteThread(t.id));
    li.append(open, remove);
    return li;
  });
  $("threads").replaceChildren(...(items.length ? items : [el("li", T.noThreads, "meta")]));
}

function showThread() {
  $("turns").replaceChildren(...(thread?.turns || []).map((turn) => {
    const view = turnView(turn.q);
    showAnswer(view, turn);
    return view.li;
  }));
  showExamples();
}

function setThread(t) {
  thread = t;
  if (t) sessionStorage.setItem("rag-thread", t.id);
  else sessionStorage.removeItem("rag-thread");
  showThread();
  showThreads();
}

function openThread(id) {
  setThread(threads.find((t) => t.id === id) || null);
  // A follow-up goes where the thread was asked, so its history and its passages agree.
  const asked = thread?.turns.at(-1)?.collection;
  if (asked && asked !== current && collections.some((c) => c.name === asked)) {
    switchCollection(asked);
  }
  toChat();
}

function deleteThread(id) {
  const index = threads.findIndex((t) => t.id === id);
  if (index < 0 || !confirm(T.confirmDeleteThread(threads[index].title))) return;
  deleted.add(id);
  threads = store(loadThreads().filter((t) => t.id !== id));
  if (thread?.id === id) setThread(null);
  else showThreads();
  // Focus stays in the list, on the thread now in the deleted one's place.
  const next = $("threads").querySelectorAll("button.open")[Math.min(index, threads.length - 1)];
  (next || $("new-thread")).focus();
}

function showExamples() {
  const examples = thread?.turns.length ? [] : chosen()?.examples || [];
  $("examples").hidden = !examples.length;
  $("example-list").replaceChildren(...examples.map((question) => {
    const li = el("li");
    const button = el("button", question, "quiet example");
    button.type = "button";
    button.addEventListener("click", () => submit(question));
    li.append(button);
    return li;
  }));
}

function submit(question) {
  if (!question || asking) return;
  $("question").value = "";
  ask(question);
}

// What the thread said so far, as /v1/ask's history: each question and its answer.
const historyOf = (t) => t.turns.flatMap((turn) => [
  { role: "user", content: turn.q }, { role: "assistant", content: turn.answer.slice(0, 8000) },
]).slice(-HISTORY_TURNS);

async function ask(question) {
  const t = thread || { id: Date.now().toString(36) + Math.random().toString(36).slice(2),
    title: question.slice(0, 80), updated: 0, turns: [] };
  if (!thread) setThread(t);
  const collection = current;
  const view = turnView(question);
  $("turns").append(view.li);
  $("examples").hidden = true;
  view.li.scrollIntoView({ block: "nearest" });
  $("status").textContent = T.searching;
  view.answer.setAttribute("aria-busy", "true");
  $("ask").disabled = true;
  asking = true;
  let text = "";
  let found = { q: question, collection, standalone: question, passages: [] };
  try {
    const response = await call("/v1/ask", {
      method: "POST",
      body: JSON.stringify({ question, stream: true, collection, history: historyOf(t) }),
    });
    for await (const [name, data] of events(response)) {
      if (name === "passages") {
        found = { ...found, standalone: data.standalone_question, passages: data.passages.map(
          ({ source, title, score, text: passage, start, end }) =>
            ({ source, title, score, text: passage, start, end })) };
        showSources(view, found);
        $("status").textContent = T.writing;
      }
      if (name === "delta") { text += data.text; renderMarkdown(view.answer, text, citeButton(null)); }
      if (name === "error") throw new ApiError(data.status, data.detail, data.request_id);
      if (name === "done") {
        const turn = { ...found, answer: data.answer, answerable: data.answerable,
          citations: data.citations, marks: data.marks };
        showAnswer(view, turn);
        $("status").textContent = T.done(Math.round(data.timings_ms.total));
        // The thread may have been left (or deleted) meanwhile: the answer goes to its own.
        if (!deleted.has(t.id)) {
          t.turns.push(turn);
          keepThread(t);
          if (t === thread && !view.li.isConnected) showThread();
        }
      }
    }
  } catch (error) {
    fail(error);
    view.error.textContent = $("status").textContent;
    view.error.hidden = false;
  } finally {
    view.answer.setAttribute("aria-busy", "false");
    $("ask").disabled = false;
    asking = false;
  }
}

// --- Views: the chat, and the documents of the chosen collection (#documents) --------------
function showView() {
  const docs = location.hash === "#documents";
  $("docs-view").hidden = !docs;
  $("chat-view").hidden = docs;
  $("view-docs").setAttribute("aria-pressed", String(docs));
  if (docs) loadDocuments();
  return docs;
}

function toChat() {
  if (location.hash === "#documents") history.pushState(null, "", location.pathname);
  showView();
  $("question").focus();
}

// --- Collections: the selector (remembered in sessionStorage), creating and deleting -------
let current = sessionStorage.getItem("rag-collection") || "default";
let collections = [];
// Why uploading is paused although the chosen collection takes files: the collection the user
// meant is not the chosen one (its creation failed, or the remembered one is gone), and a file
// must never land in another collection than the one it was meant for.
let paused = null;
// Only the newest listing is shown: one fetched before a create (without the new collection)
// or before another collection was chosen can arrive last on a busy machine.
let collectionListings = 0;
let documentListings = 0;

function report(id, error) {
  $(id).textContent = error ? error.message : "";
  $(id).hidden = !error;
}

const chosen = () => collections.find((x) => x.name === current);

// Managed collections take files over HTTP; mirrored ones (a folder of the server) only when
// the server allows it (RAG_API__WRITE_MIRRORED): /v1/collections says which, as `writable`.
const canUpload = () => Boolean(chosen()?.writable) && !paused;

function showUploads() {
  const c = chosen();
  const open = canUpload();
  $("upload-controls").hidden = !open;
  $("drop").classList.toggle("off", !open);
  $("drop-here").textContent = c ? T.dropHere(c.name) : "";
  const why = paused || (c && !c.writable ? T.readOnly(c.name) : "");
  $("upload-off").textContent = why;
  $("upload-off").hidden = !why;
  $("upload-resume").textContent = c ? T.uploadInto(c.name) : "";
  $("upload-resume").hidden = !(paused && c?.writable);
}

function showIndex() {
  const c = chosen();
  if (!c) return;
  $("index").textContent = c.generation === null
    ? (c.name === "default" ? T.noIndex : T.empty) : T.index(c.generation, c.documents, c.chunks);
  $("docs-collection").textContent = c.name;
  $("delete-collection").disabled = c.name === "default";
  showUploads();
  showExamples();
}

async function loadCollections() {
  const listing = ++collectionListings;
  let found;
  try {
    found = (await (await call("/v1/collections")).json()).collections;
  } catch (error) {
    if (listing === collectionListings) {
      $("index").textContent = error instanceof NeedKey ? error.message : T.failed(error.message);
    }
    return false;
  }
  if (listing !== collectionListings) return false; // a newer listing is on its way
  collections = found;
  if (!chosen()) {
    paused = T.gone(current);
    choose("default");
  }
  const select = $("collection");
  select.replaceChildren(...collections.map((c) => {
    const option = el("option", T.option(c));
    option.value = c.name;
    return option;
  }));
  select.value = current;
  showIndex();
  return true;
}

function choose(name) {
  current = name;
  sessionStorage.setItem("rag-collection", name);
}

// The chosen collection from the selector or an opened thread: what it shows, and its documents
// if they are on screen.
function switchCollection(name) {
  paused = null;
  choose(name);
  $("collection").value = name;
  $("manage-status").textContent = "";
  report("manage-error", null);
  showIndex();
  if (!$("docs-view").hidden) loadDocuments();
}

// The documents are listed only when their view is shown: the chat's first load needs none.
async function refresh() {
  if (await loadCollections() && !$("docs-view").hidden) await loadDocuments();
}

async function createCollection(name) {
  report("manage-error", null);
  if (!name) return;
  try {
    const response = await call(`/v1/collections/${enc(name)}`, { method: "PUT" });
    const made = (await response.json()).name;  // as the server keeps it (NFC)
    $("manage-status").textContent = response.status === 201 ? T.created(made) : T.existed(made);
    $("new-collection").value = "";
    paused = null;
    choose(made);
    await refresh();
  } catch (error) {
    const badName = error instanceof ApiError && (error.status === 400 || error.status === 422);
    report("manage-error", badName ? new Error(`${T.badName} ${error.message}`) : error);
    paused = T.notCreated(name, current);
    showUploads();
  }
}

async function deleteCollection() {
  const name = current;
  if (name === "default" || !confirm(T.confirmDeleteCollection(name))) return;
  report("manage-error", null);
  try {
    await call(`/v1/collections/${enc(name)}`, { method: "DELETE" });
    $("manage-status").textContent = T.deletedCollection(name);
    paused = null;
    choose("default");
    await refresh();
  } catch (error) {
    report("manage-error", error);
  }
}

// --- The documents of the chosen collection ------------------------------------------------
function documentRow(name, d, writable) {
  const tr = el("tr");
  tr.dataset.path = d.path;
  const path = el("td");
  path.append(el("span", d.path, "path"));
  const stem = d.path.split("/").pop().replace(/\.[^.]*$/, "");
  if (d.title && d.title !== stem) path.append(el("span", d.title, "meta title"));
  if (d.error) {
    tr.className = "unreadable";
    path.append(el("span", T.unreadable(d.error), "doc-error"));
  }
  const lang = document.documentElement.lang;
  const indexed = d.indexed_at ? new Date(d.indexed_at).toLocaleString(lang) : "—";
  const cells = [el("td", String(d.chunks), "num"),
    el("td", d.bytes === null ? "—" : d.bytes.toLocaleString(), "num"),
    el("td", d.encoding || "—"), el("td", indexed)];
  const actions = el("td");
  if (writable) {
    const remove = el("button", T.deleteDoc, "quiet");
    remove.type = "button";
    remove.setAttribute("aria-label", T.deleteDocLabel(d.path));
    remove.addEventListener("click", () => deleteDocument(name, d.path));
    actions.append(remove);
  }
  tr.append(path, ...cells, actions);
  return tr;
}

// Lists the chosen collection's documents. Its errors go to the listing's own line: the upload
// error belongs to the upload that caused it, and a listing that ends later must not erase it.
async function loadDocuments() {
  const listing = ++documentListings;
  const name = current;
  try {
    const found = (await (await call(`/v1/collections/${enc(name)}/documents`)).json()).documents;
    if (listing !== documentListings) return; // another listing was asked for meanwhile
    const writable = collections.find((x) => x.name === name)?.writable;
    const rows = found.map((d) => documentRow(name, d, writable));
    if (!rows.length) {
      const td = el("td", T.noDocs, "meta");
      td.colSpan = 6;
      const tr = el("tr"); tr.append(td); rows.push(tr);
    }
    $("docs").replaceChildren(...rows);
    $("docs-meta").textContent = T.docsMeta(name, chosen()?.kind, found.length);
  } catch (error) {
    if (listing !== documentListings) return;
    $("docs").replaceChildren();
    $("docs-meta").textContent = error instanceof NeedKey ? error.message
      : T.failed(error.message);
  }
}

async function deleteDocument(name, path) {
  if (!confirm(T.confirmDeleteDoc(path, name))) return;
  report("upload-error", null);
  try {
    const path_ = `/v1/collections/${enc(name)}/documents/${encPath(path)}`;
    await follow(await (await call(path_, { method: "DELETE" })).json());
  } catch (error) {
    report("upload-error", error);
  }
}

// --- Uploads: multipart over XMLHttpRequest (fetch reports no upload progress), then the job
function send(name, files) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const bar = $("upload-bar");
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/collections/${enc(name)}/documents`);
    for (const [k, v] of Object.entries(keyHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (event) => {
      if (!event.lengthComputable) return;
      bar.max = event.total;
      bar.value = event.loaded;
      $("upload-status").textContent = T.sending(event.loaded, event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText));
      else reject(problem(xhr.status, xhr.statusText, xhr.responseText,
        xhr.getResponseHeader("x-request-id")));
    };
    xhr.onerror = () => reject(new Error(T.failed(xhr.statusText || "network error")));
    bar.value = 0;
    bar.hidden = false;
    xhr.send(form);
  });
}

async function upload(files) {
  if (!files.length || !canUpload()) return;
  report("upload-error", null);
  $("files").disabled = true;
  try {
    await follow(await send(current, files));
  } catch (error) {
    $("upload-status").textContent = "";
    report("upload-error", error);
  } finally {
    $("upload-bar").hidden = true;
    $("files").disabled = false;
    $("files").value = "";
  }
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function jobText(job) {
  const parts = [T.state[job.state] || job.state];
  const p = job.progress || {};
  if (job.state === "running" && typeof p.to_embed === "number") {
    parts.push(T.embedded(p.embedded || 0, p.to_embed));
  }
  if (job.waiting) parts.push(T.waiting(job.waiting));
  if (job.state === "done" && job.result) parts.push(T.summary(job.result));
  return parts.join(" · ");
}

// Polls a document job every 500 ms until it has finished (done, failed or cancelled by an
// admin), then lists the documents again.
async function follow(job) {
  const status = $("upload-status");
  for (;;) {
    status.textContent = jobText(job);
    status.dataset.state = job.state;
    if (!["queued", "running"].includes(job.state)) break;
    await sleep(500);
    job = await (await call(`/v1/jobs/${enc(job.id)}`)).json();
  }
  await loadCollections();
  if (job.collection === current) await loadDocuments();
  const problems = (job.result?.failed || []).map((f) => T.notRead(f.path, f.error));
  if (job.state === "failed") problems.unshift(T.jobFailed(job.error));
  if (problems.length) report("upload-error", new Error(problems.join(" ")));
}

function dropZone(zone) {
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.toggle("over", canUpload());
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    upload([...(event.dataTransfer?.files || [])]);
  });
  // A file dropped beside the zone must not replace the page with the file.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => event.preventDefault());
  }
}

document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
document.title = T.title;
for (const node of document.querySelectorAll("[data-t]")) node.textContent = T[node.dataset.t];
$("ask-form").addEventListener("submit", (event) => {
  event.preventDefault();
  submit($("question").value.trim());
});
$("question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("ask-form").requestSubmit();
  }
});
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("rag-key", $("key").value.trim());
  $("key").value = "";
  $("key-form").hidden = true;
  refresh();
});
$("collection").addEventListener("change", (event) => switchCollection(event.target.value));
$("new-thread").addEventListener("click", () => {
  setThread(null);
  toChat();
});
$("view-docs").addEventListener("click", () => {
  if ($("docs-view").hidden) location.hash = "documents";
  else toChat();
});
window.addEventListener("hashchange", () => (showView() ? $("documents-h") : $("question")).focus());
// Another tab of this browser added or deleted a thread.
window.addEventListener("storage", (event) => {
  if (event.key !== THREADS) return;
  threads = loadThreads();
  showThreads();
});
$("create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  createCollection($("new-collection").value.trim());
});
$("delete-collection").addEventListener("click", deleteCollection);
$("upload-resume").addEventListener("click", () => {
  paused = null;
  showUploads();
});
$("files").addEventListener("change", (event) => upload([...event.target.files]));
dropZone($("drop"));
// The thread list is open beside the chat on a wide screen; on a phone it is one line above it.
$("threads-box").open = matchMedia("(min-width: 56rem)").matches;
showView();
showThread();
showThreads();
refresh();
