/* Shared helpers: API calls with the CSRF token, DOM building, formatting. */
"use strict";

const PBX = (() => {
  const body = document.body;
  const role = body.dataset.role || "";
  const extension = body.dataset.extension || "";

  function cookie(name) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || "HTTP " + status);
      this.status = status;
      this.body = body;
    }
  }

  async function api(path, options = {}) {
    const opts = { credentials: "same-origin", ...options, headers: { ...(options.headers || {}) } };
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      opts.headers["Content-Type"] = "application/json";
      delete opts.json;
    }
    const method = (opts.method || "GET").toUpperCase();
    if (!["GET", "HEAD", "OPTIONS"].includes(method)) {
      opts.headers["X-CSRF-Token"] = cookie("pbxb_csrf");
    }
    const response = await fetch(path, opts);
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new ApiError(401, null);
    }
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  /* el("a", {href: "/x", class: "y", onclick: fn}, "text", child, ...) — text is never parsed as HTML. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (value === true) node.setAttribute(key, "");
      else node.setAttribute(key, value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node, ...children) {
    node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
    return node;
  }

  const dateTime = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });

  function fmtTime(iso) {
    return iso ? dateTime.format(new Date(iso)) : "—";
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.round(Number(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(r).padStart(2, "0");
    return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
  }

  function fmtClock(seconds) {
    const s = Math.max(0, Number(seconds) || 0);
    return `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
  }

  const STATUS_TEXT = {
    answered: "answered", abandoned: "abandoned", missed: "missed",
    no_answer: "no answer", busy: "busy", failed: "failed",
  };

  function badge(kind, text) {
    return el("span", { class: "badge badge-" + kind }, text || STATUS_TEXT[kind] || kind);
  }

  function direction(dir) {
    const arrows = { inbound: "↙ in", outbound: "↗ out", internal: "↔ internal" };
    return el("span", { class: "dir dir-" + dir }, arrows[dir] || dir);
  }

  /* A snippet with [marked] words, as text nodes and <mark>s. */
  function snippet(text) {
    const parts = [];
    const re = /\[([^\]]+)\]/g;
    let last = 0, m;
    while ((m = re.exec(text || ""))) {
      parts.push(text.slice(last, m.index), el("mark", {}, m[1]));
      last = m.index + m[0].length;
    }
    parts.push((text || "").slice(last));
    return el("span", { class: "snippet" }, parts);
  }

  function notice(message, kind = "info") {
    let box = document.getElementById("notice");
    if (!box) {
      box = el("div", { id: "notice", role: "status" });
      document.body.append(box);
    }
    clear(box, el("div", { class: "notice notice-" + kind }, message));
    clearTimeout(box._timer);
    box._timer = setTimeout(() => clear(box), 5000);
  }

  function managerLabel(ext, name) {
    if (!ext) return "—";
    return name ? `${name} (${ext})` : ext;
  }

  /* Translation: t("English text", {name: value}) and tn("{n} call", "{n} calls", n). */
  function fill(text, params) {
    return params ? text.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m)) : text;
  }
  function t(message, params) {
    return fill(message, params);
  }
  function tn(singular, plural, n, params) {
    return fill(n === 1 ? singular : plural, { n, ...(params || {}) });
  }

  return { t, tn, api, ApiError, el, clear, fmtTime, fmtDuration, fmtClock, badge, direction, snippet, notice,
           managerLabel, role, extension, cookie };
})();
