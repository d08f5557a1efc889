// SPDX-License-Identifier: MIT
// Runs the gateway's /docs page script against a live /openapi.json in node, on a minimal DOM
// stand-in (no browser in CI): every operation must be listed, and expanding each one (and
// every schema node under it, a few levels deep) must work without an exception.
//
//   node gateway_docs_check.js http://127.0.0.1:PORT
//
// Prints one line of JSON: {"ok": bool, "operations": n, "expected": n, "nodes": n, "error": ""}.
"use strict";

const base = process.argv[2];

class Node {
  constructor(tag) {
    this.tagName = (tag || "#text").toUpperCase();
    this.children = [];
    this.className = "";
    this._text = "";
    this.dataset = {};
    this.style = {};
    this.listeners = {};
    this.open = false;
    this.id = "";
    this.value = "";
  }
  set textContent(t) { this.children = []; this._text = String(t); }
  get textContent() { return this._text + this.children.map((c) => c.textContent).join(""); }
  appendChild(c) { this.children.push(c); return c; }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  dispatchEvent(ev) { (this.listeners[ev.type] || []).forEach((fn) => fn(ev)); return true; }
  walk(fn) { fn(this); this.children.forEach((c) => c.walk(fn)); }
}

function matches(n, sel) {
  const [tag, cls] = sel.split(".");
  return n.tagName === tag.toUpperCase() && (!cls || n.className.split(" ").includes(cls));
}

const ids = {};
const root = new Node("body");
for (const id of ["title", "ver", "err", "desc", "auth", "filter", "count", "ops"]) {
  const n = new Node(id === "filter" ? "input" : "div");
  n.id = id;
  ids[id] = n;
  root.appendChild(n);
}
global.document = {
  title: "",
  createElement: (t) => new Node(t),
  createTextNode: (t) => { const n = new Node(); n._text = String(t); return n; },
  getElementById: (id) => ids[id] || null,
  querySelectorAll: (sel) => { const out = []; root.walk((n) => { if (matches(n, sel)) out.push(n); }); return out; },
};
Node.prototype.querySelectorAll = function (sel) {
  const out = [];
  this.walk((n) => { if (n !== this && matches(n, sel)) out.push(n); });
  return out;
};
global.Event = class { constructor(type) { this.type = type; } };
global.location = { hash: "" };

async function main() {
  const html = await (await fetch(base + "/docs")).text();
  const m = html.match(/<script>([\s\S]*?)<\/script>/);
  if (!m) throw new Error("no inline script in /docs");
  const doc = await (await fetch(base + "/openapi.json")).json();
  let expected = 0;
  for (const p of Object.keys(doc.paths))
    for (const meth of ["get", "post", "put", "patch", "delete"]) if (doc.paths[p][meth]) expected++;
  global.fetch = async (url) => {
    if (url !== "/openapi.json") throw new Error("the page fetched " + url);
    return { ok: true, status: 200, json: async () => doc };
  };
  new Function(m[1])();
  await new Promise((r) => setTimeout(r, 50));
  if (ids.err.textContent) throw new Error("page error: " + ids.err.textContent);
  const ops = document.querySelectorAll("details.op");
  let nodes = 0;
  for (const op of ops) {
    op.open = true;
    op.dispatchEvent(new Event("toggle"));
    // Expand nested schema nodes breadth-first, a few levels.
    let frontier = op.querySelectorAll("details");
    for (let depth = 0; depth < 4 && frontier.length; depth++) {
      const next = [];
      for (const d of frontier) {
        if (!d.open) { d.open = true; d.dispatchEvent(new Event("toggle")); }
        nodes++;
        d.querySelectorAll("details").forEach((c) => { if (!c.open) next.push(c); });
      }
      frontier = next;
    }
  }
  const text = ids.ops.textContent;
  const ok = ops.length === expected && expected > 0 && /Authorization/.test(ids.auth.textContent) &&
    text.includes("pageSize") && text.includes("/equities/{id}") && nodes > ops.length;
  console.log(JSON.stringify({ ok, operations: ops.length, expected, nodes, error: "" }));
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) }));
});
