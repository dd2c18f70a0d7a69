/* Shared helpers: API calls with the CSRF token, DOM building, formatting. */
"use strict";

const PBX = (() => {
  const body = document.body;
  const role = body.dataset.role || "";
  const extension = body.dataset.extension || "";

  const language = body.dataset.language || document.documentElement.lang || "en";
  const timeZone = body.dataset.timezone || "Europe/Moscow";

  /* Translation, from the catalog the server built from the same .po files as its own
     (/static/i18n/<lang>.js, loaded before this script): t("English text", {name: value}),
     tn("{n} call", "{n} calls", n). Plural forms: the browser's CLDR category of n
     (Intl.PluralRules) names the catalog's form, as the catalog's own rule says. */
  const catalog = window.PBX_CATALOG || { language, messages: {}, plurals: {}, plural: {}, plural_default: 1 };
  const pluralRules = new Intl.PluralRules(catalog.language);
  function fill(text, params) {
    return params ? text.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m)) : text;
  }
  function t(message, params) {
    return fill(catalog.messages[message] || message, params);
  }
  function pluralForm(n) {
    const category = pluralRules.select(Number(n));
    return category in catalog.plural ? catalog.plural[category] : catalog.plural_default;
  }
  function tn(singular, plural, n, params) {
    const forms = catalog.plurals[singular];
    const text = forms ? forms[pluralForm(n)] || forms[forms.length - 1] : (Number(n) === 1 ? singular : plural);
    const count = typeof n === "number" ? numbers.format(n) : n;
    return fill(text, { n: count, ...(params || {}) });
  }

  function cookie(name) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || t("The server answered {status}.", { status }));
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

  /* Values a person reads, as their language writes them, in the department's time zone
     (kpi.timezone, stored UTC): Russian 07.12.2026 14:05:09, English 7 Dec 2026, 14:05:09;
     24-hour clocks in both. */
  const ru = language === "ru";
  const LOCALE = ru ? "ru-RU" : "en-GB";
  const numbers = new Intl.NumberFormat(LOCALE);
  const formatters = new Map();
  function formatter(options) {
    const key = JSON.stringify(options);
    if (!formatters.has(key)) {
      formatters.set(key, new Intl.DateTimeFormat(LOCALE, { hourCycle: "h23", ...options }));
    }
    return formatters.get(key);
  }
  function parts(date, options) {
    const out = {};
    for (const p of formatter(options).formatToParts(date)) out[p.type] = p.value;
    return out;
  }
  const DAY_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
  function toDate(value) {
    if (value === null || value === undefined || value === "") return null;
    const date = value instanceof Date ? value : new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  /* A moment: 07.12.2026 14:05:09 (ru) / 7 Dec 2026, 14:05:09 (en). */
  function fmtTime(value) {
    const date = toDate(value);
    if (!date) return "—";
    if (ru) {
      const p = parts(date, { timeZone, year: "numeric", month: "2-digit", day: "2-digit",
                              hour: "2-digit", minute: "2-digit", second: "2-digit" });
      return `${p.day}.${p.month}.${p.year} ${p.hour}:${p.minute}:${p.second}`;
    }
    return formatter({ timeZone, year: "numeric", month: "short", day: "numeric",
                       hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(date);
  }

  /* A day: 07.12.2026 / 7 Dec 2026. "2026-12-07" is the department's day as it is, not shifted. */
  function fmtDate(value) {
    const day = typeof value === "string" && DAY_ONLY.exec(value);
    const date = day ? new Date(Date.UTC(+day[1], +day[2] - 1, +day[3])) : toDate(value);
    if (!date) return "—";
    const zone = day ? "UTC" : timeZone;
    if (ru) {
      const p = parts(date, { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" });
      return `${p.day}.${p.month}.${p.year}`;
    }
    return formatter({ timeZone: zone, year: "numeric", month: "short", day: "numeric" }).format(date);
  }

  /* The time of day: 14:05. */
  function fmtTimeOfDay(value) {
    const date = toDate(value);
    if (!date) return "—";
    const p = parts(date, { timeZone, hour: "2-digit", minute: "2-digit" });
    return `${p.hour}:${p.minute}`;
  }

  function pad2(n) {
    return String(n).padStart(2, "0");
  }

  /* A length of time: 2 мин 05 с / 2 min 05 s; 1 ч 02 мин 05 с once it is an hour or more. */
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || seconds === "" || Number.isNaN(Number(seconds))) return "—";
    const s = Math.max(0, Math.round(Number(seconds)));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (h) return t("{h} h {m} min {s} s", { h, m: pad2(m), s: pad2(r) });
    if (m) return t("{m} min {s} s", { m, s: pad2(r) });
    return t("{s} s", { s: r });
  }

  /* A position in a recording: 2:05, 1:02:05. */
  function fmtClock(seconds) {
    const s = Math.max(0, Math.floor(Number(seconds) || 0));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? `${h}:${pad2(m)}:${pad2(r)}` : `${m}:${pad2(r)}`;
  }

  /* 12 345 and 0,15 (ru) / 12,345 and 0.15 (en). */
  function fmtNumber(value, digits = 2) {
    if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
    return new Intl.NumberFormat(LOCALE, { maximumFractionDigits: digits }).format(Number(value));
  }

  /* A share given as 0..1: 87 % (ru) / 87% (en). */
  function fmtPercent(ratio, digits = 0) {
    if (ratio === null || ratio === undefined || Number.isNaN(Number(ratio))) return "—";
    return new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: digits }).format(Number(ratio));
  }

  /* Words for the values the API sends as codes. */
  const STATUS_TEXT = {
    answered: t("answered"), abandoned: t("abandoned"), missed: t("missed"),
    no_answer: t("no answer"), busy: t("busy"), failed: t("failed"),
  };
  const DIRECTION_TEXT = { inbound: t("inbound"), outbound: t("outbound"), internal: t("internal") };
  const DIRECTION_ARROW = { inbound: "↙", outbound: "↗", internal: "↔" };
  const ROLE_TEXT = { head: t("Head of sales"), manager: t("Manager"), ops: t("Telephony admin") };

  /* "21 звонок", "5 звонков": how many calls, in words. */
  function callCount(n) {
    return tn("{n} call", "{n} calls", n);
  }

  function statusName(status) {
    return STATUS_TEXT[status] || status || "—";
  }
  function directionName(dir) {
    return DIRECTION_TEXT[dir] || dir || "—";
  }
  function roleName(code) {
    return ROLE_TEXT[code] || code || "—";
  }

  function badge(kind, text) {
    return el("span", { class: "badge badge-" + kind }, text || STATUS_TEXT[kind] || kind);
  }

  function direction(dir) {
    const arrow = DIRECTION_ARROW[dir];
    return el("span", { class: "dir dir-" + dir }, arrow ? `${arrow} ${directionName(dir)}` : dir);
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

  return { t, tn, api, ApiError, el, clear, fmtTime, fmtDate, fmtTimeOfDay, fmtDuration, fmtClock, fmtNumber,
           fmtPercent, callCount, statusName, directionName, roleName, badge, direction, snippet, notice, managerLabel,
           role, extension, cookie, language, timeZone };
})();
