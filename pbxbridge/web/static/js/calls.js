/* The call journal: filters and search kept in the address bar, a page of calls, CSV export. */
"use strict";

(() => {
  const { api, el, clear, fmtTime, fmtDuration, badge, direction, snippet, managerLabel } = PBX;
  const root = document.getElementById("calls-page");
  const FIELDS = ["q", "from", "to", "manager", "client", "direction", "status", "min_duration", "max_duration",
                  "has_recording", "has_transcript"];
  const params = new URLSearchParams(location.search);

  function select(name, options) {
    return el("select", { name }, options.map(([value, text]) =>
      el("option", { value, selected: params.get(name) === value || (!params.get(name) && value === "") }, text)));
  }

  const input = (name, attrs = {}) => el("input", { name, value: params.get(name) || "", ...attrs });
  const managerSelect = select("manager", [["", "Any manager"]]);
  const form = el("form", { class: "filters card", id: "filters" },
    el("div", { class: "search-row" },
      input("q", { type: "search", placeholder: "Search what was said, a client's name or number…", class: "grow",
                   "aria-label": "Search" }),
      el("button", { type: "submit", class: "primary" }, "Search")),
    el("div", { class: "filter-grid" },
      el("label", {}, "From", input("from", { type: "date" })),
      el("label", {}, "To", input("to", { type: "date" })),
      el("label", {}, "Manager", managerSelect),
      el("label", {}, "Client", input("client", { placeholder: "name or number" })),
      el("label", {}, "Direction", select("direction", [["", "Any"], ["inbound", "Inbound"], ["outbound", "Outbound"],
                                                       ["internal", "Internal"]])),
      el("label", {}, "Status", select("status", [["", "Any"], ["answered", "Answered"], ["missed", "Missed"],
        ["abandoned", "Abandoned"], ["no_answer", "No answer"], ["busy", "Busy"], ["failed", "Failed"]])),
      el("label", {}, "Longer than, s", input("min_duration", { type: "number", min: 0, step: 1 })),
      el("label", {}, "Shorter than, s", input("max_duration", { type: "number", min: 0, step: 1 })),
      el("label", {}, "Recording", select("has_recording", [["", "Any"], ["true", "With"], ["false", "Without"]])),
      el("label", {}, "Transcript", select("has_transcript", [["", "Any"], ["true", "With"], ["false", "Without"]])),
    ),
    el("div", { class: "filter-actions" },
      el("a", { href: "/calls", class: "button" }, "Reset"),
      el("a", { id: "export", class: "button", href: "#" }, "Export CSV")));
  const summary = el("p", { class: "muted", id: "summary" });
  const table = el("table", { class: "grid", id: "calls-table" });
  const pager = el("div", { class: "pager" });
  clear(root, el("h1", {}, "Calls"), form, summary, el("div", { class: "card flush" }, table), pager);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FIELDS) {
      const value = form.elements[name].value.trim();
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

  function row(call) {
    const t = call.hit && call.hit.offset_s ? `?t=${call.hit.offset_s}` + (call.hit.recording_id ? `&rec=${call.hit.recording_id}` : "") : "";
    const link = `/calls/${call.id}${t}`;
    const who = call.client_id
      ? el("a", { href: `/clients/${call.client_id}` }, call.client_name || call.client_number || "client")
      : (call.client_number || (call.callee ? "ext " + call.callee : "—"));
    return el("tr", { class: "call-row", dataset: { callId: call.id } },
      el("td", {}, el("a", { href: link, class: "strong" }, fmtTime(call.started_at))),
      el("td", {}, direction(call.direction)),
      el("td", {}, badge(call.status)),
      el("td", {}, who, call.client_name && call.client_number ? el("div", { class: "muted small" }, call.client_number) : null),
      el("td", {}, managerLabel(call.manager, call.manager_name),
         call.final_manager && call.final_manager !== call.manager ? el("div", { class: "muted small" }, "→ " + call.final_manager) : null),
      el("td", { class: "num" }, fmtDuration(call.wait_s)),
      el("td", { class: "num" }, fmtDuration(call.talk_s)),
      el("td", { class: "icons" },
        call.playable.length ? el("a", { href: link, title: "Recording", class: "icon" }, "▶") : null,
        call.has_transcript ? el("span", { title: "Transcript", class: "icon" }, "¶") : null),
      call.hit ? el("td", { class: "hit" }, snippet(call.hit.snippet),
                    call.hit.offset_s ? el("a", { href: link, class: "play-hit" }, `▶ ${PBX.fmtClock(call.hit.offset_s)}`) : null)
               : el("td", {}));
  }

  async function load() {
    const page = Number(params.get("page") || 1);
    summary.textContent = "Loading…";
    let data;
    try {
      data = await api("/api/calls?" + query(page).toString());
    } catch (err) {
      summary.textContent = err.message;
      return;
    }
    const pages = Math.max(1, Math.ceil(data.total / data.per_page));
    // A text search counts up to a cap; past it the API says total_exact: false.
    const counted = data.total_exact === false ? `More than ${data.total}` : `${data.total}`;
    summary.textContent = `${counted} call(s)` + (params.get("q") ? ` matching “${params.get("q")}”` : "") +
      (pages > 1 ? ` · page ${data.page} of ${pages}` : "");
    clear(table,
      el("thead", {}, el("tr", {}, ["Started", "Direction", "Status", "Client", "Manager", "Wait", "Talk", "", ""]
        .map((h) => el("th", {}, h)))),
      el("tbody", {}, data.items.length ? data.items.map(row)
        : el("tr", {}, el("td", { colspan: 9, class: "empty" }, "No calls match."))));
    const link = (p, text) => {
      const q = new URLSearchParams(location.search); q.set("page", p);
      return el("a", { class: "button", href: "?" + q.toString() }, text);
    };
    clear(pager, data.page > 1 ? link(data.page - 1, "← Newer") : null,
                 data.page < pages ? link(data.page + 1, "Older →") : null);
  }
  load();
})();
