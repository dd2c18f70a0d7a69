/* KPI dashboard: lost leads first, then the department's figures beside the previous period of the
   same length and the head's targets (coloured when off target), each manager's the same way, charts,
   and every figure a link to the calls it counts. */
"use strict";

(() => {
  const { t, tn, api, el, clear, fmtTime, fmtDate, fmtDuration, fmtNumber, fmtPercent, statusName, managerLabel,
          notice } = PBX;
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
  const previousLine = el("p", { class: "muted", id: "kpi-previous" });
  const lost = el("section", { class: "card", id: "lost-leads" }, el("h2", {}, t("Lost leads")), el("p", { class: "muted" }, t("Loading…")));
  const tiles = el("div", { class: "tiles", id: "kpi-tiles" });
  const compareTable = el("table", { class: "grid small", id: "kpi-compare" });
  const compare = el("section", { class: "card flush", id: "kpi-managers" },
    el("h2", { class: "pad" }, t("Managers against the previous period")), el("div", { class: "scroll" }, compareTable));
  const speechTable = el("table", { class: "grid small", id: "kpi-speech-table" });
  const speechNote = el("p", { class: "muted", id: "kpi-speech-note", hidden: true });
  const speech = el("section", { class: "card flush", id: "kpi-speech" },
    el("h2", { class: "pad" }, t("Reviews and the sales script")), speechNote, el("div", { class: "scroll" }, speechTable));
  const allTable = el("table", { class: "grid small", id: "kpi-all" });
  // Folded on a phone: two dozen rows are a long way to scroll past to the charts.
  const allFigures = el("details", { class: "card flush", id: "kpi-department", open: window.innerWidth > 600 },
    el("summary", { class: "pad" }, el("h2", {}, t("Department against the previous period"))),
    el("div", { class: "scroll" }, allTable));
  const chartsBox = el("div", { class: "charts" });
  const table = el("table", { class: "grid small", id: "kpi-table" });
  const figures = el("section", { class: "card flush", id: "kpi-figures" }, el("h2", { class: "pad" }, t("Figures")), el("div", { class: "scroll" }, table));
  const targetsBox = el("section", { class: "card", id: "kpi-targets" });
  clear(root, el("h1", {}, t("KPI")), form, heading, previousLine, lost, tiles, compare, speech, allFigures, chartsBox, figures, targetsBox);

  /* What each figure is called, and how its value reads (the API gives its kind). */
  const LABELS = {
    calls_in: t("Inbound calls"), answered: t("Answered inbound"), missed: t("Missed calls"), missed_unanswered: t("Missed, nobody answered"),
    calls_out: t("Outbound calls"), outbound_answered: t("Outbound answered"), reach_rate: t("Reach rate"),
    talk_s: t("Talk time"), talk_s_mean: t("Average talk"), unique_clients_reached: t("Clients reached"),
    outbound_norm_share: t("Outbound norm"), callbacks: t("Callbacks"), callback_s_mean: t("Average callback time"),
    callback_s_median: t("Median callback time"), callbacks_pending: t("Callbacks pending"), lost_leads: t("Lost leads"),
    speed_to_lead_s_median: t("Speed to lead, median"), speed_to_lead_answered_s_median: t("Speed to lead (answered), median"),
    new_leads_reached_share: t("New leads reached"), offered: t("Offered"), queue_answered: t("Answered in queue"),
    abandoned: t("Abandoned calls"), asa_s: t("Average speed of answer"), wait_s_median: t("Median wait"),
    longest_wait_s: t("Longest wait"), service_level: t("Service level"),
    speech_calls: t("Calls checked against the script"), script_adherence: t("Script adherence"),
    stop_phrase_calls: t("Calls with a stop phrase"), talk_share: t("Manager's talk share"),
  };
  let kinds = {};
  const fmtValue = (kpi, v) => {
    const kind = kinds[kpi] || "count";
    if (kind === "ratio") return fmtPercent(v);
    if (kind === "seconds") return fmtDuration(v);
    return v === null || v === undefined ? "—" : fmtNumber(v, kind === "count" ? 0 : 1);
  };
  /* The calls behind a figure: the journal filtered by the figure's own definition. */
  let shown = { from: "", to: "" };
  function callsUrl(kpi, manager, from, to) {
    const q = new URLSearchParams({ kpi, from: from || shown.from, to: to || shown.to });
    if (manager) q.set("manager", manager);
    return "/calls?" + q.toString();
  }
  /* Figures listed as lead cards, not calls: the journal cannot list them. */
  const NO_CALL_LIST = new Set(["new_leads", "new_leads_reached", "new_leads_reached_share",
    "speed_to_lead_s_median", "speed_to_lead_s_p95", "speed_to_lead_answered_s_median", "speed_to_lead_answered_s_p95"]);
  function figureLink(kpi, manager, text, from, to) {
    if (NO_CALL_LIST.has(kpi)) return text;
    return el("a", { class: "figure-link", href: callsUrl(kpi, manager, from, to), dataset: { kpi } }, text);
  }
  /* Beside a figure: what it was in the previous period, and which way it moved (green: the good way). */
  function versus(kpi, f, better) {
    if (f.previous === null || f.previous === undefined) return el("span", { class: "prev muted" }, t("no figure before"));
    const moved = f.value === null || f.value === undefined ? 0 : Math.sign(f.value - f.previous);
    const good = moved === 0 ? "same" : ((moved > 0) === (better === "higher") ? "better" : "worse");
    const arrow = moved > 0 ? "▲" : moved < 0 ? "▼" : "=";
    return el("span", { class: "prev " + good, title: t("Previous period") },
      arrow + " ", t("before: {value}", { value: fmtValue(kpi, f.previous) }));
  }
  function targetText(kpi, f, better) {
    if (f.target === null || f.target === undefined) return null;
    const text = better === "higher" ? t("target: at least {value}", { value: fmtValue(kpi, f.target) })
      : t("target: at most {value}", { value: fmtValue(kpi, f.target) });
    return el("span", { class: "target" }, text);
  }
  const judged = (f) => (f.met === true ? "on-target" : f.met === false ? "off-target" : "");

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
  let better = {};
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

  /* Each manager's figures beside their previous period, off-target cells coloured. */
  const MANAGER_FIGURES = ["answered", "missed", "calls_out", "reach_rate", "talk_s", "callbacks", "lost_leads"];
  function drawCompare(rows) {
    const people = rows.filter((r) => r.manager !== null);
    clear(compareTable,
      el("thead", {}, el("tr", {}, el("th", {}, t("Manager")), MANAGER_FIGURES.map((k) => el("th", { class: "num" }, LABELS[k])))),
      el("tbody", {}, people.map((r) => el("tr", { dataset: { manager: r.manager } },
        el("td", { class: "who" }, person(r.manager)),
        MANAGER_FIGURES.map((k) => {
          const f = r.figures[k];
          return el("td", { class: "num " + judged(f), dataset: { kpi: k } },
            el("div", {}, f.value === null || f.value === undefined ? "—" : figureLink(k, r.manager, fmtValue(k, f.value))),
            versus(k, f, better[k]));
        })))));
  }

  /* Per manager: the head's reviews (from the review summary) and what the script checks found.
     A manager none of whose calls was checked reads "not checked", never 0 % as if measured. */
  function drawSpeech(comparison, reviews) {
    const reviewed = Object.fromEntries((reviews.items || []).map((r) => [r.manager, r]));
    const people = comparison.filter((r) => r.manager !== null).map((r) => r.manager);
    for (const m of Object.keys(reviewed)) if (!people.includes(m)) people.push(m);
    const figuresOf = Object.fromEntries(comparison.map((r) => [r.manager, r.figures]));
    const dept = figuresOf[null];
    const checked = dept && dept.speech_calls && dept.speech_calls.value;
    speechNote.hidden = Boolean(checked);
    speechNote.textContent = t("No call in this period has been checked against a checklist yet: the script figures appear once calls are transcribed and checked.");
    const journal = (manager, extra) => {
      const q = new URLSearchParams({ from: shown.from, to: shown.to, ...extra });
      if (manager) q.set("manager", manager);
      return "/calls?" + q.toString();
    };
    const heads = [t("Manager"), t("Reviewed calls"), t("Average score"), LABELS.script_adherence,
      LABELS.stop_phrase_calls, LABELS.talk_share];
    const speechCell = (manager, kpi, listed, label) => {
      const f = (figuresOf[manager] || {})[kpi] || {};
      const measured = ((figuresOf[manager] || {}).speech_calls || {}).value;
      if (kpi !== "talk_share" && !measured) return el("td", { class: "num muted", dataset: { kpi, label } }, t("not checked"));
      if (f.value === null || f.value === undefined) {
        return el("td", { class: "num muted", dataset: { kpi, label } }, kpi === "talk_share" ? t("not measured") : "—");
      }
      return el("td", { class: "num " + judged(f), dataset: { kpi, label } },
        el("div", {}, figureLink(listed, manager, fmtValue(kpi, f.value))), versus(kpi, f, better[kpi]));
    };
    const row = (manager) => {
      const r = reviewed[manager];
      const label = manager === null ? el("strong", {}, t("Department")) : person(manager);
      return el("tr", { class: manager === null ? "total" : "", dataset: { manager: manager || "" } },
        el("td", { class: "who", dataset: { label: heads[0] } }, label),
        el("td", { class: "num", dataset: { kpi: "reviewed", label: heads[1] } },
          r && r.reviewed ? el("a", { class: "figure-link", href: journal(manager, { reviewed: "1" }) }, fmtNumber(r.reviewed, 0))
            : (manager === null ? "—" : t("none"))),
        el("td", { class: "num", dataset: { kpi: "average_score", label: heads[2] } },
          r && r.average_score !== null && r.average_score !== undefined ? fmtNumber(r.average_score, 0) : "—"),
        speechCell(manager, "script_adherence", "speech_calls", heads[3]),
        speechCell(manager, "stop_phrase_calls", "stop_phrase_calls", heads[4]),
        speechCell(manager, "talk_share", "talk_calls", heads[5]));
    };
    people.sort();
    clear(speechTable,
      el("thead", {}, el("tr", {}, heads.map((h, i) => el("th", { class: i ? "num" : "" }, h)))),
      el("tbody", {}, people.map(row), dept ? row(null) : []));
  }

  /* Every figure a target can be set for: this period, the previous one, the target. */
  function drawAll(row) {
    const kpis = Object.keys(better).filter((k) => row.figures[k]);
    clear(allTable,
      el("thead", {}, el("tr", {}, [t("Figure"), t("This period"), t("Previous period"), t("Target")]
        .map((h, i) => el("th", { class: i ? "num" : "" }, h)))),
      el("tbody", {}, kpis.map((k) => {
        const f = row.figures[k];
        return el("tr", { class: judged(f), dataset: { kpi: k } },
          el("td", {}, LABELS[k] || k),
          el("td", { class: "num now" }, f.value === null || f.value === undefined ? "—" : figureLink(k, null, fmtValue(k, f.value))),
          el("td", { class: "num" }, fmtValue(k, f.previous)),
          el("td", { class: "num" }, f.target === null || f.target === undefined ? "—"
            : (better[k] === "higher" ? "≥ " : "≤ ") + fmtValue(k, f.target)));
      })));
  }

  /* Targets: what the head expects of each figure, for the department or for every manager. */
  function drawTargets(data) {
    const figureSelect = el("select", { name: "kpi", id: "target-kpi", "aria-label": t("Figure") },
      data.figures.map((f) => el("option", { value: f.kpi }, LABELS[f.kpi] || f.kpi)));
    const scope = el("select", { name: "scope", id: "target-scope", "aria-label": t("For whom") },
      el("option", { value: "department" }, t("The department")), el("option", { value: "manager" }, t("Each manager")));
    const value = el("input", { name: "value", id: "target-value", type: "number", min: "0", step: "any", required: true,
                                inputmode: "decimal" });
    const unit = el("span", { class: "muted", id: "target-unit" });
    const figureOf = (kpi) => data.figures.find((f) => f.kpi === kpi);
    const describe = () => {
      const f = figureOf(figureSelect.value);
      unit.textContent = f.kind === "ratio" ? t("%") : f.kind === "seconds" ? (f.kpi === "talk_s" ? t("minutes a day") : t("seconds"))
        : t("a day");
      value.setAttribute("aria-label", t("Target"));
      scope.querySelector("option[value=manager]").disabled = f.department_only;
      if (f.department_only) scope.value = "department";
    };
    figureSelect.addEventListener("change", describe);
    // People type shares in per cent and total talk time in minutes; the API keeps 0..1 and seconds.
    const toApi = (f, v) => (f.kind === "ratio" ? v / 100 : f.kpi === "talk_s" ? v * 60 : v);
    const fromApi = (f, v) => (f.kind === "ratio" ? v * 100 : f.kpi === "talk_s" ? v / 60 : v);
    const save = el("form", { class: "toolbar", id: "target-form" },
      el("label", {}, t("Figure"), figureSelect), el("label", {}, t("For whom"), scope),
      el("label", {}, t("Target"), el("span", { class: "with-unit" }, value, unit)),
      el("button", { class: "primary", type: "submit" }, t("Set target")));
    save.addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = figureOf(figureSelect.value);
      // The page asks for per cent: say so in per cent rather than pass on the API's 0..1.
      if (f.kind === "ratio" && f.kpi !== "outbound_norm_share" && Number(value.value) > 100) {
        value.setAttribute("aria-invalid", "true");
        notice(t("A share is from 0 to 100 %."), "error");
        return;
      }
      value.removeAttribute("aria-invalid");
      try {
        await api("/api/kpi/targets", { method: "PUT", json: { kpi: f.kpi, scope: scope.value, value: toApi(f, Number(value.value)) } });
        notice(t("Target saved"));
        await load();
      } catch (err) {
        value.setAttribute("aria-invalid", "true");
        notice(err.message, "error");
      }
    });
    const list = data.items.length ? el("ul", { class: "targets", id: "target-list" }, data.items.map((item) => {
      const f = figureOf(item.kpi);
      const written = item.kind === "ratio" ? fmtPercent(item.value) : f.kpi === "talk_s" ? fmtDuration(item.value)
        : item.kind === "seconds" ? fmtDuration(item.value) : fmtNumber(item.value, 1);
      const params = { figure: LABELS[item.kpi], value: written };
      const text = item.scope === "manager"
        ? (item.better === "higher" ? t("{figure}, each manager: at least {value}", params)
          : t("{figure}, each manager: at most {value}", params))
        : (item.better === "higher" ? t("{figure}, department: at least {value}", params)
          : t("{figure}, department: at most {value}", params));
      const remove = el("button", { type: "button", class: "link", "aria-label": t("Remove target: {text}", { text }) }, t("Remove"));
      remove.addEventListener("click", async () => {
        await api("/api/kpi/targets", { method: "PUT", json: { kpi: item.kpi, scope: item.scope, value: null } });
        await load();
      });
      const edit = el("button", { type: "button", class: "link" }, t("Change"));
      edit.addEventListener("click", () => {
        figureSelect.value = item.kpi; describe(); scope.value = item.scope;
        value.value = String(Math.round(fromApi(f, item.value) * 100) / 100); value.focus();
      });
      return el("li", { dataset: { kpi: item.kpi, scope: item.scope } }, el("span", {}, text), " ", edit, " ", remove);
    })) : el("p", { class: "muted" }, t("No targets yet. A count's target is per day; over a longer period it adds up."));
    clear(targetsBox, el("h2", {}, t("Targets")), list, save);
    describe();
  }

  async function load() {
    const q = new URLSearchParams(params);
    const [fig, leads, managers, targets] = await Promise.all([
      api("/api/kpi?" + q.toString()), api("/api/kpi/lost-leads?" + q.toString()),
      api("/api/managers").catch(() => ({ items: [] })), api("/api/kpi/targets")]);
    // The same days as the figures (the KPI API fills in the period when none is asked for).
    const reviews = await api("/api/review/summary?" + new URLSearchParams({ from: fig.from, to: fig.to }).toString())
      .catch(() => ({ items: [] }));
    kinds = Object.fromEntries(targets.figures.map((f) => [f.kpi, f.kind]));
    better = Object.fromEntries(targets.figures.map((f) => [f.kpi, f.better]));
    shown = { from: fig.from, to: fig.to };
    drawTargets(targets);
    names = Object.fromEntries(managers.items.filter((m) => m.name).map((m) => [m.extension, m.name]));
    if (!params.get("from")) form.elements.from.value = fig.from;
    if (!params.get("to")) form.elements.to.value = fig.to;
    heading.textContent = fig.from === fig.to ? t("Figures for {day}", { day: fmtDate(fig.from) })
      : t("Figures from {from} to {to}", { from: fmtDate(fig.from), to: fmtDate(fig.to) });
    previousLine.textContent = fig.previous.from === fig.previous.to
      ? t("Compared with {day}", { day: fmtDate(fig.previous.from) })
      : t("Compared with {from} to {to}", { from: fmtDate(fig.previous.from), to: fmtDate(fig.previous.to) });
    const lostCount = leads.items.filter((i) => i.state === "lost").length;
    clear(lost, el("h2", {}, tn("{n} lost lead", "{n} lost leads", lostCount),
      el("span", { class: "muted" }, " · ", tn("{n} caller still to call back", "{n} callers still to call back", leads.items.length - lostCount))),
    lostTable(leads.items));

    const rows = fig.rows;
    for (const r of rows) if (r.manager && r.manager_name) names[r.manager] = r.manager_name;
    for (const r of reviews.items || []) if (r.manager && r.manager_name) names[r.manager] = r.manager_name;
    drawSpeech(fig.comparison || [], reviews);
    for (const c of charts.splice(0)) c.destroy();
    clear(chartsBox);
    const empty = fig.empty ?? !rows.some((r) => r.calls_in || r.calls_out || r.calls_internal || r.offered);
    if (empty) {
      // Zeros would read as a measured day with no calls answered; say plainly there were none.
      clear(tiles, el("p", { class: "card empty-period", id: "kpi-empty" }, t("No calls in this period.")));
      figures.hidden = true;
      compare.hidden = true;
      allFigures.hidden = true;
      return;
    }
    figures.hidden = false;
    compare.hidden = false;

    const dept = rows.filter((r) => r.manager === null);
    const people = rows.filter((r) => r.manager !== null);
    const dates = [...new Set(rows.map((r) => r.date))].sort();
    const team = [...new Set(people.map((r) => r.manager))].sort();
    const sum = (list, key) => list.reduce((a, r) => a + (r[key] || 0), 0);
    const dayLabel = (d) => (fig.period === "week" ? t("Week of {date}", { date: fmtDate(d) }) : fmtDate(d));

    const deptCompare = (fig.comparison || []).find((r) => r.manager === null);
    const TILES = ["offered", "queue_answered", "abandoned", "service_level", "calls_out", "lost_leads", "talk_s"];
    clear(tiles, deptCompare ? TILES.map((kpi) => {
      const f = deptCompare.figures[kpi];
      return el("div", { class: "tile " + judged(f), id: "tile-" + kpi, dataset: { kpi } },
        el("div", { class: "value" }, figureLink(kpi, null, fmtValue(kpi, f.value))),
        el("div", { class: "label" }, LABELS[kpi]),
        el("div", { class: "compare" }, versus(kpi, f, better[kpi]), targetText(kpi, f, better[kpi])));
    }) : []);
    drawCompare(fig.comparison || []);
    allFigures.hidden = !deptCompare;
    if (deptCompare) drawAll(deptCompare);

    chart(canvasCard(t("Calls per manager"), "chart-managers"), {
      type: "bar",
      data: { labels: team.map(person), datasets: [
        { label: t("Answered inbound"), data: team.map((m) => sum(people.filter((r) => r.manager === m), "answered")), backgroundColor: PALETTE[0] },
        { label: t("Outbound"), data: team.map((m) => sum(people.filter((r) => r.manager === m), "calls_out")), backgroundColor: PALETTE[2] },
        { label: t("Missed calls"), data: team.map((m) => sum(people.filter((r) => r.manager === m), "missed")), backgroundColor: PALETTE[1] },
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    // Counts per day are bars (one day is one group of bars, not a lone dot); the service level
    // is a line over them on its own 0-100 % axis.
    chart(canvasCard(fig.period === "week" ? t("Department by week") : t("Department by day"), "chart-department"), {
      type: "bar",
      data: { labels: dates.map(dayLabel), datasets: [
        { label: t("Offered"), data: dates.map((d) => sum(dept.filter((r) => r.date === d), "offered")), backgroundColor: PALETTE[0] },
        { label: t("Answered in queue"), data: dates.map((d) => sum(dept.filter((r) => r.date === d), "queue_answered")), backgroundColor: PALETTE[2] },
        { label: t("Abandoned calls"), data: dates.map((d) => sum(dept.filter((r) => r.date === d), "abandoned")), backgroundColor: PALETTE[1] },
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
      ["answered", t("Answered calls")], ["missed", t("Missed calls")], ["calls_out", t("Out")], ["reach_rate", t("Reach")],
      ["talk_s", t("Talk")], ["callbacks", t("Callbacks")], ["lost_leads", t("Lost")], ["offered", t("Offered")],
      ["service_level", t("SL")], ["outbound_norm_share", t("Norm")]];
    // A row's days: one day, or the week's Monday to Sunday (within the period asked for).
    const daysOf = (r) => {
      if (fig.period !== "week") return [r.date, r.date];
      const end = new Date(r.date + "T00:00:00Z");
      end.setUTCDate(end.getUTCDate() + 6);
      const sunday = end.toISOString().slice(0, 10);
      return [r.date < fig.from ? fig.from : r.date, sunday > fig.to ? fig.to : sunday];
    };
    const cell = (r, k) => {
      if (k === "date") return fmtDate(r.date);
      if (k === "manager") return r.manager === null ? el("strong", {}, t("Department")) : person(r.manager);
      const text = ["reach_rate", "service_level", "outbound_norm_share"].includes(k) ? fmtPercent(r[k])
        : k === "talk_s" ? fmtDuration(r[k]) : (r[k] === null || r[k] === undefined ? "—" : count(r[k]));
      if (r[k] === null || r[k] === undefined) return text;
      const [from, to] = daysOf(r);
      return figureLink(k, r.manager, text, from, to);
    };
    clear(table, el("thead", {}, el("tr", {}, cols.map(([, h]) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", { class: r.manager === null ? "total" : "" },
        cols.map(([k]) => el("td", { class: k === "date" || k === "manager" ? "" : "num" }, cell(r, k)))))));
  }
  load().catch((err) => clear(lost, el("p", { class: "error" }, err.message)));
})();
