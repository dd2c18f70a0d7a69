/* The call journal: filters and search kept in the address bar, a page of calls, CSV export.
   On a phone the rows are cards and the filters fold away under the search box. */
"use strict";

(() => {
  const { t, tn, api, el, clear, fmtTime, fmtDuration, fmtClock, badge, direction, snippet, managerLabel, callCount } = PBX;
  const root = document.getElementById("calls-page");
  const FIELDS = ["q", "from", "to", "manager", "client", "direction", "status", "min_duration", "max_duration",
                  "has_recording", "has_transcript"];
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
  const filterNames = FIELDS.filter((name) => name !== "q");
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
    field(t("Longer than, s"), input("min_duration", { type: "number", min: 0, step: 1, inputmode: "numeric" })),
    field(t("Shorter than, s"), input("max_duration", { type: "number", min: 0, step: 1, inputmode: "numeric" })),
    field(t("Recording"), anyWithWithout("has_recording")),
    field(t("Transcript"), anyWithWithout("has_transcript")),
  );
  // Open on a desktop; on a phone folded, its summary saying how many filters are on.
  const more = el("details", { class: "more-filters", open: !narrow.matches },
    el("summary", {}, t("Filters"), active ? el("span", { class: "count", title: tn("{n} filter on", "{n} filters on", active) }, String(active)) : null),
    filterGrid,
    el("div", { class: "filter-actions" },
      el("a", { href: "/calls", class: "button" }, t("Reset")),
      el("a", { id: "export", class: "button", href: "#", download: "" }, t("Export CSV"))));
  const form = el("form", { class: "filters card", id: "filters", role: "search" },
    el("div", { class: "search-row" },
      input("q", { type: "search", placeholder: t("Search what was said, a client's name or number…"), class: "grow",
                   "aria-label": t("Search"), maxlength: MAX_QUERY_CHARS, enterkeyhint: "search" }),
      el("button", { type: "submit", class: "primary" }, t("Find"))),
    more);
  const summary = el("p", { class: "muted", id: "summary", role: "status" });
  const problem = el("p", { class: "error", id: "calls-error", role: "alert", hidden: true });
  const table = el("table", { class: "grid journal", id: "calls-table" });
  const pager = el("nav", { class: "pager", "aria-label": t("Pages") });
  clear(root, el("h1", {}, t("Call journal")), form, problem, summary, el("div", { class: "card flush" }, table), pager);

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

  api("/api/managers").then((data) => {
    for (const m of data.items) {
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
                    call.hit.offset_s ? el("a", { href: link, class: "play-hit", title: t("Play from here") }, `▶ ${fmtClock(call.hit.offset_s)}`) : null)
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
    const control = name && form.elements[name];
    if (control) {
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", "calls-error");
      if (name !== "q") more.open = true;
      control.focus();
    }
  }

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
    clear(summary, el("span", {}, counted(data)),
          pages > 1 ? el("span", { class: "page-of" }, t("page {page} of {pages}", { page: data.page, pages })) : null);
    clear(table,
      el("thead", {}, el("tr", {}, [t("Started"), t("Direction"), t("Status"), t("Client"), t("Manager"), t("Wait"),
                                     t("Talk"), "", params.get("q") ? t("Found") : ""]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, data.items.length ? data.items.map(row)
        : el("tr", {}, el("td", { colspan: 9, class: "empty" }, t("No calls match.")))));
    const link = (p, text) => {
      const q = new URLSearchParams(location.search); q.set("page", p);
      return el("a", { class: "button", href: "?" + q.toString() }, text);
    };
    clear(pager, data.page > 1 ? link(data.page - 1, t("← Newer")) : null,
                 data.page < pages ? link(data.page + 1, t("Older →")) : null);
  }
  load();
})();
