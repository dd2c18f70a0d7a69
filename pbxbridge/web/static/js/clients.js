/* Client cards: search by name or number. */
"use strict";

(() => {
  const { api, el, clear, fmtTime, badge, managerLabel } = PBX;
  const root = document.getElementById("clients-page");
  const params = new URLSearchParams(location.search);
  const box = el("input", { type: "search", name: "q", value: params.get("q") || "", class: "grow",
                            placeholder: "Name or number…", "aria-label": "Search clients" });
  const form = el("form", { class: "card search-row" }, box, el("button", { class: "primary", type: "submit" }, "Find"));
  const table = el("table", { class: "grid" });
  const summary = el("p", { class: "muted" });
  clear(root, el("h1", {}, "Clients"), form, summary, el("div", { class: "card flush" }, table));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.search = box.value.trim() ? "q=" + encodeURIComponent(box.value.trim()) : "";
  });
  api("/api/clients?" + params.toString()).then((data) => {
    summary.textContent = `${data.total} card(s)`;
    clear(table,
      el("thead", {}, el("tr", {}, ["Client", "Numbers", "Stage", "Responsible", "Last call"].map((h) => el("th", {}, h)))),
      el("tbody", {}, data.items.length ? data.items.map((c) => el("tr", {},
        el("td", {}, el("a", { href: `/clients/${c.id}`, class: "strong" }, c.name || c.numbers[0] || `#${c.id}`)),
        el("td", {}, c.numbers.join(", ")),
        el("td", {}, badge(c.is_lead ? "lead" : "client", c.is_lead ? "lead" : "client")),
        el("td", {}, managerLabel(c.responsible_manager, c.responsible_manager_name)),
        el("td", {}, fmtTime(c.last_call_at))))
        : el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No cards found."))));
  }).catch((err) => { summary.textContent = err.message; });
})();
