/* KPI dashboard: lost leads first, then charts per manager and for the department, by day or week. */
"use strict";

(() => {
  const { api, el, clear, fmtTime, fmtDuration, managerLabel } = PBX;
  const root = document.getElementById("kpi-page");
  const params = new URLSearchParams(location.search);
  const PALETTE = ["#2457c5", "#e0703a", "#2a9d8f", "#b5179e", "#8a9a5b", "#6c757d", "#f4a261", "#264653"];
  const charts = [];

  const input = (name, attrs) => el("input", { name, value: params.get(name) || "", ...attrs });
  const period = el("select", { name: "period" },
    el("option", { value: "day", selected: params.get("period") !== "week" }, "By day"),
    el("option", { value: "week", selected: params.get("period") === "week" }, "By week"));
  const form = el("form", { class: "card toolbar" },
    el("label", {}, "From", input("from", { type: "date" })),
    el("label", {}, "To", input("to", { type: "date" })),
    el("label", {}, "Period", period),
    el("button", { class: "primary", type: "submit" }, "Show"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const n of ["from", "to", "period"]) if (form.elements[n].value) q.set(n, form.elements[n].value);
    location.search = q.toString();
  });
  const lost = el("section", { class: "card", id: "lost-leads" }, el("h2", {}, "Lost leads"), el("p", { class: "muted" }, "Loading…"));
  const tiles = el("div", { class: "tiles", id: "kpi-tiles" });
  const chartsBox = el("div", { class: "charts" });
  const table = el("table", { class: "grid small" });
  clear(root, el("h1", {}, "KPI"), form, lost, tiles, chartsBox,
        el("section", { class: "card flush" }, el("h2", { class: "pad" }, "Figures"), el("div", { class: "scroll" }, table)));

  function canvasCard(title, id) {
    const canvas = el("canvas", { id, height: 260 });
    chartsBox.append(el("section", { class: "card chart" }, el("h2", {}, title), el("div", { class: "chart-box" }, canvas)));
    return canvas;
  }

  function chart(canvas, config) {
    if (!window.Chart) return;
    config.options = { responsive: true, maintainAspectRatio: false, animation: false,
                       plugins: { legend: { position: "bottom" } }, ...(config.options || {}) };
    charts.push(new Chart(canvas, config));
  }

  const pct = (v) => (v === null || v === undefined ? "—" : `${Math.round(v * 100)}%`);
  const num = (v) => (v === null || v === undefined ? "—" : String(v));

  function lostTable(items) {
    if (!items.length) return el("p", { class: "muted" }, "No lost leads in this period. Every missed caller was called back in time.");
    return el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ["", "Client", "Ended", "Status", "Waited", "Rang"].map((h) => el("th", {}, h)))),
      el("tbody", {}, items.map((i) => el("tr", { class: "state-" + i.state },
        el("td", {}, el("span", { class: "badge badge-" + (i.state === "lost" ? "missed" : "busy") }, i.state === "lost" ? "lost" : "at risk")),
        el("td", {}, i.client_id ? el("a", { href: `/clients/${i.client_id}` }, i.client_name || i.client_number || "card")
                                 : (i.client_number || "—")),
        el("td", {}, el("a", { href: `/calls/${i.call_id}` }, fmtTime(i.ended_at))),
        el("td", {}, i.status), el("td", {}, fmtDuration(i.wait_s)), el("td", {}, i.rang.join(", "))))));
  }

  async function load() {
    const q = new URLSearchParams(params);
    const [fig, leads] = await Promise.all([api("/api/kpi?" + q.toString()), api("/api/kpi/lost-leads?" + q.toString())]);
    if (!params.get("from")) form.elements.from.value = fig.from;
    if (!params.get("to")) form.elements.to.value = fig.to;
    const lostCount = leads.items.filter((i) => i.state === "lost").length;
    clear(lost, el("h2", {}, `Lost leads: ${lostCount}`, el("span", { class: "muted" }, ` · callers still to call back: ${leads.items.length - lostCount}`)),
          lostTable(leads.items));

    const rows = fig.rows;
    const dept = rows.filter((r) => r.manager === null);
    const people = rows.filter((r) => r.manager !== null);
    const dates = [...new Set(rows.map((r) => r.date))].sort();
    const managers = [...new Set(people.map((r) => r.manager))].sort();
    const names = Object.fromEntries(people.map((r) => [r.manager, managerLabel(r.manager, r.manager_name)]));
    const sum = (list, key) => list.reduce((a, r) => a + (r[key] || 0), 0);

    const offered = sum(dept, "offered"), answered = sum(dept, "queue_answered"), abandoned = sum(dept, "abandoned");
    const withinSl = sum(dept, "answered_within_sl");
    clear(tiles,
      [["Offered", offered], ["Answered", answered], ["Abandoned", abandoned],
       ["Service level", pct(answered + abandoned ? withinSl / (answered + abandoned) : null)],
       ["Outbound calls", sum(dept, "calls_out")], ["Lost leads", sum(dept, "lost_leads")],
       ["Talk time", fmtDuration(sum(dept, "talk_s"))]]
        .map(([label, value]) => el("div", { class: "tile" }, el("div", { class: "value" }, String(value)), el("div", { class: "label" }, label))));

    for (const c of charts.splice(0)) c.destroy();
    clear(chartsBox);
    const label = fig.period === "week" ? "Week of " : "";
    chart(canvasCard("Calls per manager", "chart-managers"), {
      type: "bar",
      data: { labels: managers.map((m) => names[m]), datasets: [
        { label: "Answered inbound", data: managers.map((m) => sum(people.filter((r) => r.manager === m), "answered")), backgroundColor: PALETTE[0] },
        { label: "Outbound", data: managers.map((m) => sum(people.filter((r) => r.manager === m), "calls_out")), backgroundColor: PALETTE[2] },
        { label: "Missed", data: managers.map((m) => sum(people.filter((r) => r.manager === m), "missed")), backgroundColor: PALETTE[1] },
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    chart(canvasCard(`Department ${fig.period === "week" ? "by week" : "by day"}`, "chart-department"), {
      type: "line",
      data: { labels: dates.map((d) => label + d), datasets: [
        { label: "Offered", data: dates.map((d) => sum(dept.filter((r) => r.date === d), "offered")), borderColor: PALETTE[0], backgroundColor: PALETTE[0] },
        { label: "Answered", data: dates.map((d) => sum(dept.filter((r) => r.date === d), "queue_answered")), borderColor: PALETTE[2], backgroundColor: PALETTE[2] },
        { label: "Abandoned", data: dates.map((d) => sum(dept.filter((r) => r.date === d), "abandoned")), borderColor: PALETTE[1], backgroundColor: PALETTE[1] },
        { label: "Service level, %", yAxisID: "pct", borderDash: [4, 4], borderColor: PALETTE[3], backgroundColor: PALETTE[3],
          data: dates.map((d) => { const r = dept.find((x) => x.date === d); return r && r.service_level !== null ? Math.round(r.service_level * 100) : null; }) },
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } },
                           pct: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } } } },
    });
    chart(canvasCard("Talk time per manager, minutes", "chart-talk"), {
      type: "bar",
      data: { labels: dates.map((d) => label + d), datasets: managers.map((m, i) => ({
        label: names[m], backgroundColor: PALETTE[i % PALETTE.length],
        data: dates.map((d) => Math.round(sum(people.filter((r) => r.manager === m && r.date === d), "talk_s") / 6) / 10),
      })) },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });

    const cols = [["date", fig.period === "week" ? "Week of" : "Day"], ["manager", "Manager"], ["calls_in", "In"],
      ["answered", "Answered"], ["missed", "Missed"], ["calls_out", "Out"], ["reach_rate", "Reach"],
      ["talk_s", "Talk"], ["callbacks", "Callbacks"], ["lost_leads", "Lost"], ["offered", "Offered"],
      ["service_level", "SL"], ["outbound_norm_share", "Norm"]];
    const cell = (r, k) => k === "manager" ? (r.manager === null ? el("strong", {}, "Department") : names[r.manager])
      : ["reach_rate", "service_level", "outbound_norm_share"].includes(k) ? pct(r[k])
      : k === "talk_s" ? fmtDuration(r[k]) : num(r[k]);
    clear(table, el("thead", {}, el("tr", {}, cols.map(([, h]) => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows.map((r) => el("tr", { class: r.manager === null ? "total" : "" },
        cols.map(([k]) => el("td", {}, cell(r, k)))))
        : el("tr", {}, el("td", { colspan: cols.length, class: "empty" }, "No figures for this period."))));
  }
  load().catch((err) => clear(lost, el("p", { class: "error" }, err.message)));
})();
