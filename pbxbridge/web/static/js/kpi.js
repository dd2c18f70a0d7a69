/* KPI dashboard: lost leads first, then charts per manager and for the department, by day or week. */
"use strict";

(() => {
  const { t, tn, api, el, clear, fmtTime, fmtDate, fmtDuration, fmtNumber, fmtPercent, statusName, managerLabel } = PBX;
  const root = document.getElementById("kpi-page");
  const params = new URLSearchParams(location.search);
  const PALETTE = ["#2457c5", "#e0703a", "#2a9d8f", "#b5179e", "#8a9a5b", "#6c757d", "#f4a261", "#264653"];
  const charts = [];

  const input = (name, attrs) => el("input", { name, value: params.get(name) || "", ...attrs });
  const period = el("select", { name: "period" },
    el("option", { value: "day", selected: params.get("period") !== "week" }, t("By day")),
    el("option", { value: "week", selected: params.get("period") === "week" }, t("By week")));
  const form = el("form", { class: "card toolbar" },
    el("label", {}, t("From"), input("from", { type: "date" })),
    el("label", {}, t("To"), input("to", { type: "date" })),
    el("label", {}, t("Period"), period),
    el("button", { class: "primary", type: "submit" }, t("Show")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const n of ["from", "to", "period"]) if (form.elements[n].value) q.set(n, form.elements[n].value);
    location.search = q.toString();
  });
  const heading = el("p", { class: "muted", id: "kpi-period" });
  const lost = el("section", { class: "card", id: "lost-leads" }, el("h2", {}, t("Lost leads")), el("p", { class: "muted" }, t("Loading…")));
  const tiles = el("div", { class: "tiles", id: "kpi-tiles" });
  const chartsBox = el("div", { class: "charts" });
  const table = el("table", { class: "grid small", id: "kpi-table" });
  const figures = el("section", { class: "card flush", id: "kpi-figures" }, el("h2", { class: "pad" }, t("Figures")), el("div", { class: "scroll" }, table));
  clear(root, el("h1", {}, t("KPI")), form, heading, lost, tiles, chartsBox, figures);

  function canvasCard(title, id) {
    const canvas = el("canvas", { id, role: "img", "aria-label": title });
    chartsBox.append(el("section", { class: "card chart" }, el("h2", {}, title), el("div", { class: "chart-box" }, canvas)));
    return canvas;
  }

  function chart(canvas, config) {
    if (!window.Chart) return;
    config.options = { responsive: true, maintainAspectRatio: false, animation: false,
                       plugins: { legend: { position: "bottom" } }, ...(config.options || {}) };
    charts.push(new Chart(canvas, config));
  }

  const count = (v) => fmtNumber(v, 0);
  let names = {};
  const person = (ext) => managerLabel(ext, names[ext]);

  function lostTable(items) {
    if (!items.length) return el("p", { class: "muted" }, t("No lost leads in this period. Every missed caller was called back in time."));
    return el("div", { class: "scroll" }, el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ["", t("Client"), t("Ended"), t("Status"), t("Waited"), t("Rang")].map((h) => el("th", {}, h)))),
      el("tbody", {}, items.map((i) => el("tr", { class: "state-" + i.state },
        el("td", {}, el("span", { class: "badge badge-" + (i.state === "lost" ? "missed" : "busy") }, i.state === "lost" ? t("lost") : t("at risk"))),
        el("td", {}, i.client_id ? el("a", { href: `/clients/${i.client_id}` }, i.client_name || i.client_display || i.client_number || t("card"))
                                 : (i.client_display || i.client_number || "—")),
        el("td", {}, el("a", { href: `/calls/${i.call_id}` }, fmtTime(i.ended_at))),
        el("td", {}, statusName(i.status)), el("td", {}, fmtDuration(i.wait_s)),
        el("td", {}, i.rang.map(person).join(", ") || "—"))))));
  }

  async function load() {
    const q = new URLSearchParams(params);
    const [fig, leads, managers] = await Promise.all([
      api("/api/kpi?" + q.toString()), api("/api/kpi/lost-leads?" + q.toString()),
      api("/api/managers").catch(() => ({ items: [] }))]);
    names = Object.fromEntries(managers.items.filter((m) => m.name).map((m) => [m.extension, m.name]));
    if (!params.get("from")) form.elements.from.value = fig.from;
    if (!params.get("to")) form.elements.to.value = fig.to;
    heading.textContent = fig.from === fig.to ? t("Figures for {day}", { day: fmtDate(fig.from) })
      : t("Figures from {from} to {to}", { from: fmtDate(fig.from), to: fmtDate(fig.to) });
    const lostCount = leads.items.filter((i) => i.state === "lost").length;
    clear(lost, el("h2", {}, tn("{n} lost lead", "{n} lost leads", lostCount),
      el("span", { class: "muted" }, " · ", tn("{n} caller still to call back", "{n} callers still to call back", leads.items.length - lostCount))),
    lostTable(leads.items));

    const rows = fig.rows;
    for (const r of rows) if (r.manager && r.manager_name) names[r.manager] = r.manager_name;
    for (const c of charts.splice(0)) c.destroy();
    clear(chartsBox);
    const empty = fig.empty ?? !rows.some((r) => r.calls_in || r.calls_out || r.calls_internal || r.offered);
    if (empty) {
      // Zeros would read as a measured day with no calls answered; say plainly there were none.
      clear(tiles, el("p", { class: "card empty-period", id: "kpi-empty" }, t("No calls in this period.")));
      figures.hidden = true;
      return;
    }
    figures.hidden = false;

    const dept = rows.filter((r) => r.manager === null);
    const people = rows.filter((r) => r.manager !== null);
    const dates = [...new Set(rows.map((r) => r.date))].sort();
    const team = [...new Set(people.map((r) => r.manager))].sort();
    const sum = (list, key) => list.reduce((a, r) => a + (r[key] || 0), 0);
    const dayLabel = (d) => (fig.period === "week" ? t("Week of {date}", { date: fmtDate(d) }) : fmtDate(d));

    const offered = sum(dept, "offered"), answered = sum(dept, "queue_answered"), abandoned = sum(dept, "abandoned");
    const withinSl = sum(dept, "answered_within_sl");
    clear(tiles,
      [[t("Offered"), count(offered)], [t("Answered"), count(answered)], [t("Abandoned"), count(abandoned)],
       [t("Service level"), fmtPercent(answered + abandoned ? withinSl / (answered + abandoned) : null)],
       [t("Outbound calls"), count(sum(dept, "calls_out"))], [t("Lost leads"), count(sum(dept, "lost_leads"))],
       [t("Talk time"), fmtDuration(sum(dept, "talk_s"))]]
        .map(([label, value]) => el("div", { class: "tile" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label))));

    chart(canvasCard(t("Calls per manager"), "chart-managers"), {
      type: "bar",
      data: { labels: team.map(person), datasets: [
        { label: t("Answered inbound"), data: team.map((m) => sum(people.filter((r) => r.manager === m), "answered")), backgroundColor: PALETTE[0] },
        { label: t("Outbound"), data: team.map((m) => sum(people.filter((r) => r.manager === m), "calls_out")), backgroundColor: PALETTE[2] },
        { label: t("Missed"), data: team.map((m) => sum(people.filter((r) => r.manager === m), "missed")), backgroundColor: PALETTE[1] },
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    // Counts per day are bars (one day is one group of bars, not a lone dot); the service level
    // is a line over them on its own 0-100 % axis.
    chart(canvasCard(fig.period === "week" ? t("Department by week") : t("Department by day"), "chart-department"), {
      type: "bar",
      data: { labels: dates.map(dayLabel), datasets: [
        { label: t("Offered"), data: dates.map((d) => sum(dept.filter((r) => r.date === d), "offered")), backgroundColor: PALETTE[0] },
        { label: t("Answered"), data: dates.map((d) => sum(dept.filter((r) => r.date === d), "queue_answered")), backgroundColor: PALETTE[2] },
        { label: t("Abandoned"), data: dates.map((d) => sum(dept.filter((r) => r.date === d), "abandoned")), backgroundColor: PALETTE[1] },
        { type: "line", label: t("Service level, %"), yAxisID: "pct", borderDash: [4, 4], borderColor: PALETTE[3], backgroundColor: PALETTE[3],
          pointRadius: 4,
          data: dates.map((d) => { const r = dept.find((x) => x.date === d); return r && r.service_level !== null ? Math.round(r.service_level * 100) : null; }) },
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } },
                           pct: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } } } },
    });
    chart(canvasCard(t("Talk time per manager, minutes"), "chart-talk"), {
      type: "bar",
      data: { labels: dates.map(dayLabel), datasets: team.map((m, i) => ({
        label: person(m), backgroundColor: PALETTE[i % PALETTE.length],
        data: dates.map((d) => Math.round(sum(people.filter((r) => r.manager === m && r.date === d), "talk_s") / 6) / 10),
      })) },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });

    const cols = [["date", fig.period === "week" ? t("Week of") : t("Day")], ["manager", t("Manager")], ["calls_in", t("In")],
      ["answered", t("Answered")], ["missed", t("Missed")], ["calls_out", t("Out")], ["reach_rate", t("Reach")],
      ["talk_s", t("Talk")], ["callbacks", t("Callbacks")], ["lost_leads", t("Lost")], ["offered", t("Offered")],
      ["service_level", t("SL")], ["outbound_norm_share", t("Norm")]];
    const cell = (r, k) => k === "date" ? fmtDate(r.date)
      : k === "manager" ? (r.manager === null ? el("strong", {}, t("Department")) : person(r.manager))
      : ["reach_rate", "service_level", "outbound_norm_share"].includes(k) ? fmtPercent(r[k])
      : k === "talk_s" ? fmtDuration(r[k]) : (r[k] === null || r[k] === undefined ? "—" : count(r[k]));
    clear(table, el("thead", {}, el("tr", {}, cols.map(([, h]) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", { class: r.manager === null ? "total" : "" },
        cols.map(([k]) => el("td", { class: k === "date" || k === "manager" ? "" : "num" }, cell(r, k)))))));
  }
  load().catch((err) => clear(lost, el("p", { class: "error" }, err.message)));
})();
