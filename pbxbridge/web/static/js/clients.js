/* Client cards: search by name or number. */
"use strict";

(() => {
  const { t, tn, api, el, clear, fmtTime, badge, managerLabel } = PBX;
  const root = document.getElementById("clients-page");
  const params = new URLSearchParams(location.search);
  const box = el("input", { type: "search", name: "q", value: params.get("q") || "", class: "grow",
                            placeholder: t("Name or number…"), "aria-label": t("Search clients") });
  const form = el("form", { class: "card search-row" }, box,
    el("button", { class: "primary", type: "submit" }, t("Find")));
  const table = el("table", { class: "grid clients-table" });
  const summary = el("p", { class: "muted" });
  clear(root, el("h1", {}, t("Clients")), form, summary, el("div", { class: "card flush scroll" }, table));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.search = box.value.trim() ? "q=" + encodeURIComponent(box.value.trim()) : "";
  });

  function phonesOf(c) {
    return c.phones || c.numbers.map((n) => ({ number: n, display: n }));
  }

  // Each cell says what it holds: on a phone the table becomes one block per client.
  const HEADERS = () => [t("Client"), t("Numbers"), t("Stage"), t("Responsible"), t("Last call")];

  api("/api/clients?" + params.toString()).then((data) => {
    const heads = HEADERS();
    summary.textContent = tn("{n} card", "{n} cards", data.total);
    clear(table,
      el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, h)))),
      el("tbody", {}, data.items.length ? data.items.map((c) => {
        const phones = phonesOf(c);
        return el("tr", {},
          el("td", { dataset: { label: heads[0] } },
            el("a", { href: `/clients/${c.id}`, class: "strong" }, c.name || (phones[0] && phones[0].display) || `#${c.id}`)),
          el("td", { class: "num", dataset: { label: heads[1] } },
            phones.map((p, i) => [i ? el("br") : null, p.display])),
          el("td", { dataset: { label: heads[2] } },
            badge(c.is_lead ? "lead" : "client", c.is_lead ? t("Lead") : t("Client"))),
          el("td", { dataset: { label: heads[3] } }, managerLabel(c.responsible_manager, c.responsible_manager_name)),
          el("td", { class: "num", dataset: { label: heads[4] } }, fmtTime(c.last_call_at)));
      })
        : el("tr", {}, el("td", { colspan: 5, class: "empty" }, t("No cards found.")))));
  }).catch((err) => { summary.textContent = err.message; });
})();
