// The page at /: asks /v1/ask as a stream and shows the answer, its citations and passages.
// No dependencies and no build step. Nothing from the server is ever parsed as HTML: the
// Markdown renderer below builds DOM nodes and sets only textContent, so an answer or a passage
// cannot inject markup or script (the Content-Security-Policy forbids inline script as well).
"use strict";

const TEXT = {
  en: {
    title: "Ask your documents", questionLabel: "Question", ask: "Ask", answer: "Answer",
    passages: "Retrieved passages", close: "Close", keyLabel: "API key", keySave: "Use key",
    keyNeeded: "This server needs an API key.", keyBad: "That key was not accepted.",
    index: (g, s, c) => `Index generation ${g} · ${s} sources · ${c} chunks`,
    noIndex: "No index is served yet: run `rag reindex`.",
    searching: "Searching…", writing: "Writing the answer…",
    done: (ms) => `Answered in ${ms} ms.`,
    refused: "The documents do not answer this question.",
    open: "Show in document", score: "score", cite: (n) => `Citation ${n}: open the quote`,
    failed: (m) => `Failed: ${m}`, generation: (g) => `generation ${g}`,
  },
  zh: {
    title: "向文档提问", questionLabel: "问题", ask: "提问", answer: "回答",
    passages: "检索到的段落", close: "关闭", keyLabel: "API 密钥", keySave: "使用密钥",
    keyNeeded: "此服务需要 API 密钥。", keyBad: "密钥无效。",
    index: (g, s, c) => `索引第 ${g} 代 · ${s} 个文档 · ${c} 个片段`,
    noIndex: "尚无可用索引：请运行 `rag reindex`。",
    searching: "检索中…", writing: "正在生成回答…",
    done: (ms) => `用时 ${ms} 毫秒。`,
    refused: "文档中没有这个问题的答案。",
    open: "在文档中查看", score: "得分", cite: (n) => `引用 ${n}：查看原文`,
    failed: (m) => `失败：${m}`, generation: (g) => `第 ${g} 代`,
  },
};
// The browser's first preferred language decides: Chinese for any zh-*, English otherwise.
const LANG = /^zh/i.test(navigator.languages?.[0] || navigator.language || "") ? "zh" : "en";
const T = TEXT[LANG];
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

// --- API calls, with the key (if any) from sessionStorage --------------------------------
class NeedKey extends Error {}

function headers() {
  const key = sessionStorage.getItem("rag-key");
  const h = { "Content-Type": "application/json" };
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function call(path, init = {}) {
  const response = await fetch(path, { ...init, headers: headers() });
  if (response.status === 401) {
    $("key-form").hidden = false;
    throw new NeedKey(sessionStorage.getItem("rag-key") ? T.keyBad : T.keyNeeded);
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

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
async function openDocument(source, start, end) {
  const q = new URLSearchParams({ start, end });
  const path = `/v1/documents/${source.split("/").map(encodeURIComponent).join("/")}?${q}`;
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

function showPassages(passages) {
  const list = $("passages");
  list.replaceChildren();
  for (const p of passages) {
    const li = el("li");
    const head = el("div");
    head.append(el("span", p.title || p.source, "src"),
      el("span", ` · ${p.source} · ${T.score} ${p.score.toFixed(3)}`, "meta"));
    const open = el("button", T.open);
    open.type = "button";
    open.addEventListener("click", () => openDocument(p.source, p.start, p.end).catch(fail));
    li.append(head, el("p", p.text, "txt"), open);
    list.append(li);
  }
}

function citeButton(done) {
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
    button.addEventListener("click", () => openDocument(c.source, c.start, c.end).catch(fail));
    return button;
  };
}

function fail(error) {
  $("status").textContent = error instanceof NeedKey ? error.message : T.failed(error.message);
}

async function ask(question) {
  const answer = $("answer");
  $("refusal").hidden = true;
  answer.replaceChildren();
  $("passages").replaceChildren();
  $("status").textContent = T.searching;
  answer.setAttribute("aria-busy", "true");
  $("ask").disabled = true;
  let text = "";
  try {
    const response = await call("/v1/ask", {
      method: "POST", body: JSON.stringify({ question, stream: true }),
    });
    for await (const [name, data] of events(response)) {
      if (name === "passages") { showPassages(data.passages); $("status").textContent = T.writing; }
      if (name === "delta") { text += data.text; renderMarkdown(answer, text, citeButton(null)); }
      if (name === "error") throw new Error(data.detail);
      if (name === "done") {
        renderMarkdown(answer, data.answer, citeButton(data));
        if (!data.answerable) { $("refusal").textContent = T.refused; $("refusal").hidden = false; }
        $("status").textContent = T.done(Math.round(data.timings_ms.total));
      }
    }
  } catch (error) {
    fail(error);
  } finally {
    answer.setAttribute("aria-busy", "false");
    $("ask").disabled = false;
  }
}

async function showIndex() {
  try {
    const index = await (await call("/v1/index")).json();
    $("index").textContent = T.index(index.generation, index.sources, index.chunks);
  } catch (error) {
    $("index").textContent = error instanceof NeedKey ? error.message : T.noIndex;
  }
}

document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
document.title = T.title;
for (const node of document.querySelectorAll("[data-t]")) node.textContent = T[node.dataset.t];
$("ask-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (question) ask(question);
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
  showIndex();
});
showIndex();
