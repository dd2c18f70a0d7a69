/* The call journal: filters and search kept in the address bar, a page of calls, CSV export.
   Presets and the user's saved filters above the search; any column sorts (on the server, so pages
   follow one order); the talk time of every call the filters match; opened from a KPI figure, the
   calls behind that figure and which figure it is. On a phone the rows are cards and the filters
   fold away under the search box. Inside the fold, "More filters": whose words the search looks for,
   the head's review (tag, score, reviewed) and the speech analytics (a checklist item failed, a stop
   phrase said). Words in quotes are searched as a phrase, word after word. */
"use strict";

(() => {
  const { t, tn, api, el, clear, fmtTime, fmtDate, fmtDuration, fmtClock, badge, direction, snippet, managerLabel,
          callCount, notice } = PBX;
  const root = document.getElementById("calls-page");
  const FIELDS = ["q", "from", "to", "manager", "client", "direction", "status", "answered", "min_duration",
                  "max_duration", "has_recording", "has_transcript", "kpi", "sort", "side", "tag", "score_below",
                  "score_at_least", "reviewed", "checklist", "failed_item", "stop_said"];
  // The filters of the "More filters" section (opened when one of them is on).
  const SAID_FIELDS = ["side", "tag", "score_below", "score_at_least", "reviewed", "checklist", "failed_item", "stop_said"];
  // The figures of the KPI page and the wallboard a journal can be opened on (pbxbridge.kpi.drilldown).
  const FIGURES = {
    calls_in: t("Inbound calls"), calls_out: t("Outbound calls"), calls_internal: t("Internal calls"),
    answered: t("Answered inbound"), missed: t("Missed calls"), missed_unanswered: t("Missed, answered by nobody"),
    transferred_in: t("Transferred"), outbound_answered: t("Outbound answered"), reach_rate: t("Reach rate"),
    outbound_norm_share: t("Outbound norm"), talk_s: t("Talk time"), talk_s_mean: t("Mean talk time"),
    talk_s_median: t("Median talk time"), talk_s_p95: t("Talk time, 95th percentile"),
    unique_clients_reached: t("Clients reached"), first_call_at: t("First call"), last_call_at: t("Last call"),
    callbacks: t("Callbacks"), callback_s_mean: t("Mean callback time"), callback_s_median: t("Median callback time"),
    callback_s_p95: t("Callback time, 95th percentile"), callbacks_pending: t("Waiting for a callback"),
    lost_leads: t("Lost leads"), offered: t("Offered"), queue_answered: t("Answered in queue"), abandoned: t("Abandoned calls"),
    short_abandoned: t("Hung up within seconds"), asa_s: t("Average speed of answer"),
    wait_s_median: t("Median wait"), wait_s_p95: t("Wait, 95th percentile"), longest_wait_s: t("Longest wait"),
    answered_within_sl: t("Answered within the service level"), service_level: t("Service level"),
    missed_not_called_back: t("Missed, not called back"),
  };
  // Columns the journal sorts by: the server's names (web.call_filters.SORTS).
  const SORTS = [["started", t("Started")], ["direction", t("Direction")], ["status", t("Status")],
                 ["client", t("Client")], ["manager", t("Manager")], ["wait", t("Wait")], ["talk", t("Talk")],
                 ["duration", t("Duration")]];
  // As long as the server takes them (pbxbridge.transcription.search, web.call_filters).
  const MAX_QUERY_CHARS = 200;
  const MAX_CLIENT_CHARS = 200;
  // The server reads a request line up to 64 KiB (web.app); a longer address never reaches the journal.
  const MAX_ADDRESS_CHARS = 60000;
  const params = new URLSearchParams(location.search);
  const narrow = window.matchMedia("(max-width: 700px)");

  function select(name, options) {
    return el("select", { name }, options.map(([value, text]) =>
      el("option", { value, selected: params.get(name) === value || (!params.get(name) && value === "") }, text)));
  }

  const input = (name, attrs = {}) => el("input", { name, value: params.get(name) || "", ...attrs });
  const field = (label, control) => el("label", {}, el("span", { class: "label" }, label), control);
  const managerSelect = select("manager", [["", t("Any manager")]]);
  const anyWithWithout = (name) => select(name, [["", t("Any")], ["true", t("With")], ["false", t("Without")]]);
  // The order and the figure are no filters a person set here: not counted on the fold's summary.
  const filterNames = FIELDS.filter((name) => !["q", "sort", "kpi"].includes(name));
  const active = filterNames.filter((name) => params.get(name)).length;
  const filterGrid = el("div", { class: "filter-grid" },
    field(t("From"), input("from", { type: "date" })),
    field(t("To"), input("to", { type: "date" })),
    field(t("Manager"), managerSelect),
    field(t("Client"), input("client", { placeholder: t("name or number"), maxlength: MAX_CLIENT_CHARS })),
    field(t("Direction"), select("direction", [["", t("Any")], ["inbound", t("Inbound")], ["outbound", t("Outbound")],
                                               ["internal", t("Internal")]])),
    field(t("Status"), select("status", [["", t("Any")], ["answered", t("Answered")], ["missed", t("Missed")],
      ["abandoned", t("Abandoned")], ["no_answer", t("No answer")], ["busy", t("Busy")], ["failed", t("Failed")]])),
    field(t("Answered"), select("answered", [["", t("Any")], ["true", t("Answered by someone")],
                                             ["false", t("Answered by nobody")]])),
    field(t("Sort by"), select("sort", [["", t("Newest first")], ["started", t("Oldest first")],
      ...SORTS.filter(([key]) => key !== "started").flatMap(([key, label]) => [
        [key, t("{column}, ascending", { column: label })], ["-" + key, t("{column}, descending", { column: label })]])])),
    field(t("Longer than, s"), input("min_duration", { type: "number", min: 0, step: 1, inputmode: "numeric" })),
    field(t("Shorter than, s"), input("max_duration", { type: "number", min: 0, step: 1, inputmode: "numeric" })),
    field(t("Recording"), anyWithWithout("has_recording")),
    field(t("Transcript"), anyWithWithout("has_transcript")),
  );
  /* More filters: what was said and the review. A checklist item is picked in one list (grouped by
     checklist) and sent as two fields, the checklist and the item's title. */
  const tagSelect = select("tag", [["", t("Any tag")]]);
  const checklistField = el("input", { type: "hidden", name: "checklist", value: params.get("checklist") || "" });
  const itemField = el("input", { type: "hidden", name: "failed_item", value: params.get("failed_item") || "" });
  const failedSelect = el("select", { name: "failed_pick", "aria-label": t("Checklist item failed") },
    el("option", { value: "" }, t("Any")));
  const pick = (checklist, item) => JSON.stringify([checklist, item]);
  failedSelect.addEventListener("change", () => {
    const [checklist, item] = failedSelect.value ? JSON.parse(failedSelect.value) : ["", ""];
    checklistField.value = checklist;
    itemField.value = item;
  });
  const scoreInput = (name) => input(name, { type: "number", min: 0, max: 100, step: 1, inputmode: "numeric" });
  const saidOn = SAID_FIELDS.filter((name) => params.get(name)).length;
  const said = el("details", { class: "said-filters", id: "said-filters", open: saidOn > 0 },
    el("summary", {}, t("More filters"),
       saidOn ? el("span", { class: "count", title: tn("{n} filter on", "{n} filters on", saidOn) }, String(saidOn)) : null),
    el("div", { class: "filter-grid said-grid" }, checklistField, itemField,
      field(t("Words said by"), select("side", [["", t("Either side")], ["manager", t("The manager")], ["client", t("The client")]])),
      field(t("Stop phrase"), select("stop_said", [["", t("Any")], ["true", t("Said")], ["false", t("Not said")]])),
      el("label", { class: "wide" }, el("span", { class: "label" }, t("Checklist item failed")), failedSelect),
      field(t("Review tag"), tagSelect),
      field(t("Reviewed"), select("reviewed", [["", t("Any")], ["true", t("Reviewed")], ["false", t("Not reviewed")]])),
      field(t("Score below, %"), scoreInput("score_below")),
      field(t("Score at least, %"), scoreInput("score_at_least"))),
    el("p", { class: "muted small hint" }, t("Words in quotes are found as a phrase, in that order: “next step”."), " ",
       t("Whose words are told apart on two-channel recordings; on the others the whole call is searched.")));
  api("/api/calls/filter-options").then((options) => {
    const tags = options.tags.includes(params.get("tag") || "") || !params.get("tag") ? options.tags : [...options.tags, params.get("tag")];
    for (const tag of tags) tagSelect.append(el("option", { value: tag, selected: params.get("tag") === tag }, tag));
    const wanted = params.get("checklist") && params.get("failed_item") ? pick(params.get("checklist"), params.get("failed_item")) : "";
    let found = false;
    for (const checklist of options.checklists) {
      failedSelect.append(el("optgroup", { label: checklist.name }, checklist.items.map((item) => {
        const value = pick(checklist.name, item);
        found = found || value === wanted;
        return el("option", { value, selected: value === wanted }, item);
      })));
    }
    // A filter saved for an item since renamed stays visible rather than silently off.
    if (wanted && !found) {
      failedSelect.append(el("option", { value: wanted, selected: true },
        t("{item} ({checklist})", { item: params.get("failed_item"), checklist: params.get("checklist") })));
    }
  }).catch(() => null);

  // Open on a desktop; on a phone folded, its summary saying how many filters are on.
  const more = el("details", { class: "more-filters", open: !narrow.matches || saidOn > 0 },
    el("summary", {}, t("Filters"), active ? el("span", { class: "count", title: tn("{n} filter on", "{n} filters on", active) }, String(active)) : null),
    filterGrid,
    said,
    el("div", { class: "filter-actions" },
      el("a", { href: "/calls", class: "button" }, t("Reset")),
      el("a", { id: "export", class: "button", href: "#", download: "" }, t("Export CSV"))));
  const kpiField = el("input", { type: "hidden", name: "kpi", value: params.get("kpi") || "" });
  const form = el("form", { class: "filters card", id: "filters", role: "search" }, kpiField,
    el("div", { class: "search-row" },
      input("q", { type: "search", placeholder: t("Search what was said, a client's name or number…"), class: "grow",
                   "aria-label": t("Search"), maxlength: MAX_QUERY_CHARS, enterkeyhint: "search" }),
      el("button", { type: "submit", class: "primary" }, t("Find"))),
    more);
  const summary = el("p", { class: "muted", id: "summary", role: "status" });
  // Which figure the page lists, when opened from the KPI page or the wallboard.
  const figure = el("div", { class: "figure-banner card", id: "figure", hidden: true });
  const presets = el("nav", { class: "presets", id: "presets", "aria-label": t("Saved filters") });
  const problem = el("p", { class: "error", id: "calls-error", role: "alert", hidden: true });
  const table = el("table", { class: "grid journal", id: "calls-table" });
  const pager = el("nav", { class: "pager", "aria-label": t("Pages") });
  clear(root, el("h1", {}, t("Call journal")), presets, figure, form, problem, summary,
        el("div", { class: "card flush" }, table), pager);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FIELDS) {
      // Runs of spaces are one space: what the server searches for.
      const value = form.elements[name].value.replace(/\s+/g, " ").trim();
      if (value) next.set(name, value);
    }
    location.search = next.toString();
  });

  function query(page) {
    const q = new URLSearchParams();
    for (const name of FIELDS) if (params.get(name)) q.set(name, params.get(name));
    if (page) q.set("page", page);
    return q;
  }
  document.getElementById("export").href = "/api/calls/export.csv?" + query().toString();

  const managerNames = {};
  const managersLoaded = api("/api/managers").then((data) => {
    for (const m of data.items) {
      managerNames[m.extension] = m.name;
      managerSelect.append(el("option", { value: m.extension, selected: params.get("manager") === m.extension },
                              managerLabel(m.extension, m.name)));
    }
  });

  /* The client: the card's name (a link) over the number as people write it; for a call between
     extensions, the colleague called. */
  function clientCell(call) {
    const number = call.client_number_display || call.client_number;
    if (call.client_id) {
      return [el("a", { href: `/clients/${call.client_id}` }, call.client_name || number || t("client")),
              call.client_name && number ? el("div", { class: "muted small number" }, number) : null];
    }
    if (number) return el("span", { class: "number" }, number);
    return call.callee ? managerLabel(call.callee, call.callee_name) : "—";
  }

  function managerCell(call) {
    const transfers = call.transfers || [];
    return [managerLabel(call.manager, call.manager_name),
            transfers.length ? el("div", { class: "muted small transfer", title: t("Transferred to") },
                                  "→ ", transfers.map((to) => managerLabel(to.display, to.name)).join(", ")) : null];
  }

  // Each cell says what it is: the label a phone shows beside it once the rows are cards.
  const td = (label, attrs, ...children) => el("td", { "data-label": label, ...attrs }, ...children);

  function row(call) {
    const at = call.hit && call.hit.offset_s ? `?t=${call.hit.offset_s}` + (call.hit.recording_id ? `&rec=${call.hit.recording_id}` : "") : "";
    const link = `/calls/${call.id}${at}`;
    return el("tr", { class: `call-row status-${call.status}`, dataset: { callId: call.id } },
      td(t("Started"), { class: "when" }, el("a", { href: link, class: "strong" }, fmtTime(call.started_at))),
      td(t("Direction"), { class: "direction" }, direction(call.direction)),
      td(t("Status"), { class: "status" }, badge(call.status)),
      td(t("Client"), { class: "client" }, clientCell(call)),
      td(t("Manager"), { class: "manager" }, managerCell(call)),
      td(t("Wait"), { class: "num wait" }, fmtDuration(call.wait_s)),
      td(t("Talk"), { class: "num talk" }, fmtDuration(call.talk_s)),
      td("", { class: "icons" },
        call.playable.length ? el("a", { href: link, title: t("Recording"), "aria-label": t("Listen to the recording"), class: "icon" }, "▶") : null,
        call.has_transcript ? el("span", { title: t("Transcript"), "aria-label": t("Transcript"), class: "icon" }, "¶") : null),
      call.hit ? td(t("Found"), { class: "hit" }, snippet(call.hit.snippet),
                    call.hit.offset_s ? el("a", { href: link, class: "play-hit", title: t("Play from here") }, `▶ ${fmtClock(call.hit.offset_s)}`) : null,
                    call.hit.side_unknown ? el("div", { class: "muted small side-unknown" },
                      t("One-channel recording: the side is unknown, the words were found in the whole call")) : null)
               : el("td", { class: "no-hit" }));
  }

  function counted(data) {
    const q = params.get("q");
    // A text search counts up to a cap; past it the API says total_exact: false.
    if (q && data.total_exact === false) {
      return tn("More than {n} call matches “{query}”", "More than {n} calls match “{query}”", data.total, { query: q });
    }
    if (q) return tn("{n} call matches “{query}”", "{n} calls match “{query}”", data.total, { query: q });
    return callCount(data.total);
  }

  function showProblem(err) {
    // The server names the field it could not take: mark it and say why, in the user's language.
    problem.textContent = err.message;
    problem.hidden = false;
    const name = err.body && err.body.field;
    // The item's two fields are set through the one list of items.
    const control = name && (["checklist", "failed_item"].includes(name) ? failedSelect : form.elements[name]);
    if (control) {
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", "calls-error");
      if (name !== "q") more.open = true;
      if (SAID_FIELDS.includes(name)) said.open = true;
      control.focus();
    }
  }

  /* A column's header sorts by it: first ascending (times and durations: the longest first), again the other way. */
  function header(key, label) {
    const current = params.get("sort") || "-started";
    const on = current.replace(/^-/, "") === key;
    const descending = current.startsWith("-");
    if (params.get("q")) return el("th", { scope: "col" }, label);  // a text search lists newest first
    const firstDescending = ["started", "wait", "talk"].includes(key);
    const next = on ? (descending ? key : "-" + key) : (firstDescending ? "-" + key : key);
    const q = new URLSearchParams(location.search);
    q.delete("page");
    if (next === "-started") q.delete("sort"); else q.set("sort", next);
    return el("th", { scope: "col", "aria-sort": on ? (descending ? "descending" : "ascending") : null },
      el("a", { href: "?" + q.toString(), class: "sort" + (on ? " on" : ""), dataset: { sort: key },
                title: t("Sort by {column}", { column: label }) },
         label, on ? (descending ? " ↓" : " ↑") : null));
  }

  function showFigure(kpi) {
    if (!kpi) { figure.hidden = true; return; }
    const name = FIGURES[kpi.name] || kpi.name;
    const whose = kpi.manager ? managerLabel(kpi.manager, managerNames[kpi.manager]) : t("the department");
    const from = params.get("from"), to = params.get("to");
    const period = from && to && from !== to ? `${fmtDate(from)} – ${fmtDate(to)}` : (from || to ? fmtDate(from || to) : t("all days"));
    const count = kpi.unit === "clients" ? tn("{n} client", "{n} clients", kpi.count) : callCount(kpi.count);
    const q = new URLSearchParams(location.search);
    q.delete("kpi"); q.delete("page");
    clear(figure,
      el("div", {}, el("strong", {}, t("Figure: {figure}", { figure: name })), " · ", whose, " · ", period, " · ",
         el("span", { id: "figure-count" }, count)),
      kpi.unit === "clients" ? el("div", { class: "muted small" }, t("One row per client and day: their latest call.")) : null,
      el("a", { href: "?" + q.toString(), class: "button" }, t("Show all calls")));
    figure.hidden = false;
  }

  /* Presets and the user's own saved filters: each a link to the journal with its filters. */
  // The filters on now as the server keeps them: no page, no blanks, in name order.
  const current = new URLSearchParams([...new URLSearchParams(location.search)]
    .filter(([key, value]) => FIELDS.includes(key) && value.trim())
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0)));
  const saveBox = el("form", { class: "save-filter", id: "save-filter" },
    el("input", { name: "name", maxlength: 80, required: true, placeholder: t("Name of the filter"),
                  "aria-label": t("Name of the filter") }),
    el("button", { type: "submit" }, t("Save filter")));
  saveBox.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/api/calls/filters", { method: "POST", json: { name: saveBox.elements.name.value, query: current.toString() } });
      notice(t("Filter saved"));
      saveBox.reset();
      loadPresets();
    } catch (err) {
      notice(err.message, "error");
    }
  });

  async function remove(saved) {
    if (!confirm(t("Delete the filter “{name}”?", { name: saved.name }))) return;
    try {
      await api(`/api/calls/filters/${saved.id}`, { method: "DELETE" });
      loadPresets();
    } catch (err) {
      notice(err.message, "error");
    }
  }

  async function loadPresets() {
    let data;
    try { data = await api("/api/calls/filters"); } catch (err) { return; }
    const here = current.toString();
    const chip = (item, extra) => el("span", { class: "chip" + (item.query === here ? " on" : ""), dataset: { filter: item.id } },
      el("a", { href: "/calls?" + item.query, "aria-current": item.query === here ? "page" : null }, item.name), extra);
    clear(presets,
      data.presets.map((p) => chip(p)),
      data.saved.map((f) => chip(f, el("button", { type: "button", class: "chip-delete", title: t("Delete the filter"),
                                                   "aria-label": t("Delete the filter “{name}”", { name: f.name }),
                                                   onclick: () => remove(f) }, "×"))),
      // Only filters worth keeping can be saved: some are on, and they are not a saved one already.
      here && ![...data.presets, ...data.saved].some((f) => f.query === here) ? saveBox : null);
  }
  loadPresets();

  async function load() {
    const page = Number(params.get("page") || 1);
    summary.textContent = t("Loading…");
    const path = "/api/calls?" + query(page).toString();
    let data;
    try {
      if (path.length > MAX_ADDRESS_CHARS) throw new Error(t("The search and the filters are too long to send. Shorten them."));
      data = await api(path);
    } catch (err) {
      summary.textContent = "";
      clear(table);
      showProblem(err);
      return;
    }
    const pages = Math.max(1, Math.ceil(data.total / data.per_page));
    showFigure(data.kpi);
    clear(summary, el("span", {}, counted(data)),
          data.talk_s_total !== null && data.talk_s_total !== undefined
            ? el("span", { class: "talk-total", id: "talk-total" }, t("Talk time: {duration}", { duration: fmtDuration(data.talk_s_total) }))
            : null,
          pages > 1 ? el("span", { class: "page-of" }, t("page {page} of {pages}", { page: data.page, pages })) : null);
    clear(table,
      el("thead", {}, el("tr", {}, [...SORTS.filter(([key]) => key !== "duration").map(([key, label]) => header(key, label)),
                                     el("th", { scope: "col" }), el("th", { scope: "col" }, params.get("q") ? t("Found") : "")])),
      el("tbody", {}, data.items.length ? data.items.map(row)
        : el("tr", {}, el("td", { colspan: 9, class: "empty" }, t("No calls match.")))));
    const link = (p, text) => {
      const q = new URLSearchParams(location.search); q.set("page", p);
      return el("a", { class: "button", href: "?" + q.toString() }, text);
    };
    clear(pager, data.page > 1 ? link(data.page - 1, t("← Newer")) : null,
                 data.page < pages ? link(data.page + 1, t("Older →")) : null);
  }
  managersLoaded.catch(() => null).then(load);
})();
