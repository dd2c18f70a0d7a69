/* The audit log: who listened to, exported or changed what. */
"use strict";

(() => {
  const { api, el, clear, fmtTime } = PBX;
  const root = document.getElementById("audit-page");
  const params = new URLSearchParams(location.search);
  const page = Number(params.get("page") || 1);
  const table = el("table", { class: "grid" });
  const pager = el("div", { class: "pager" });
  clear(root, el("h1", {}, "Audit log"), el("div", { class: "card flush" }, table), pager);
  api(`/api/audit?page=${page}`).then((data) => {
    clear(table, el("thead", {}, el("tr", {}, ["When", "Who", "Role", "Did", "What", "Details", "From"].map((h) => el("th", {}, h)))),
      el("tbody", {}, data.items.map((e) => el("tr", {},
        el("td", {}, fmtTime(e.at)), el("td", {}, e.username), el("td", {}, e.role), el("td", {}, e.action.replaceAll("_", " ")),
        el("td", {}, e.target || "—"), el("td", { class: "small mono" }, Object.keys(e.details || {}).length ? JSON.stringify(e.details) : "—"), el("td", {}, e.ip || "")))));
    const pages = Math.max(1, Math.ceil(data.total / data.per_page));
    clear(pager, page > 1 ? el("a", { class: "button", href: `?page=${page - 1}` }, "← Newer") : null,
          page < pages ? el("a", { class: "button", href: `?page=${page + 1}` }, "Older →") : null);
  });
})();
