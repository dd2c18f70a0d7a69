/* The audit log: who listened to, exported or changed what, who failed to sign in, what was refused. */
"use strict";

(() => {
  const { t, tn, api, el, clear, fmtTime, notice } = PBX;
  const roleName = PBX.roleName || ((code) => code || "—");
  const root = document.getElementById("audit-page");

  /* What each action is called; an action missing here is shown by its own name. */
  const ACTIONS = {
    sign_in: t("Signed in"),
    sign_out: t("Signed out"),
    sign_in_failed: t("Failed to sign in"),
    sign_in_locked: t("Sign-in locked"),
    request_refused: t("Request refused"),
    listen: t("Listened to a recording"),
    download: t("Downloaded a recording"),
    export_calls: t("Exported calls"),
    update_client: t("Changed a client card"),
    click_to_call: t("Called from the card"),
    click_to_call_refused: t("Call from the card refused"),
    change_routing_rules: t("Changed overflow routing"),
    add_client_note: t("Added a note to a client card"),
    merge_clients: t("Merged two client cards"),
    assign_clients: t("Assigned clients to a manager"),
    missed_close: t("Closed a missed call without calling back"),
    review_call: t("Reviewed a call"),
    comment_call: t("Commented on a call"),
    uncomment_call: t("Removed a comment on a call"),
    review_setup: t("Changed the review tags and checklist"),
    set_kpi_target: t("Set a KPI target"),
    checklist_set: t("Changed a script checklist"),
    checklist_delete: t("Deleted a script checklist"),
    crm_user_set: t("Linked a manager to a CRM user"),
    crm_user_removed: t("Unlinked a manager from a CRM user"),
    api_token_used: t("API token used"),
    api_token_refused: t("API token refused"),
    "retention.recording_deleted": t("Recording deleted after its retention period"),
    "retention.transcript_deleted": t("Transcript deleted after its retention period"),
  };
  const REASONS = {
    unknown_user: t("no such user"),
    wrong_password: t("wrong password"),
    locked: t("sign-in locked"),
    throttled: t("too many attempts, had to wait"),
    sign_in_required: t("not signed in"),
    forbidden: t("not allowed"),
    csrf: t("the page was out of date (no valid form token)"),
    unknown_extension: t("no such extension"),
    extension_busy: t("the handset was busy"),
    extension_unavailable: t("the handset is not connected to the PBX"),
    invalid_number: t("not a number that can be dialled"),
    pbx_unavailable: t("the PBX did not answer"),
    originate_rejected: t("the PBX refused the call"),
    originate_failed: t("the PBX could not ring the handset"),
    failed: t("the call could not be placed"),
    no_crm_extension: t("the CRM user has no extension in pbxbridge"),
  };
  const SCOPES = { account: t("account"), address: t("address") };

  function actionName(code) {
    return ACTIONS[code] || code.replaceAll("_", " ");
  }

  /* The keys the log's own entries use, in words; a value true/false/null reads as yes/no/—. */
  const KEYS = {
    manager: t("Manager"), role: t("Role"), name: t("Name"), is_lead: t("Lead"),
    responsible_manager: t("Responsible manager"), extension: t("Extension"), number: t("Number"),
    numbers: t("Numbers"), calls: t("Calls"),
  };
  function value(key, v) {
    if (key === "role") return roleName(v);
    if (v === true) return t("Yes");
    if (v === false) return t("No");
    if (v === null || v === undefined) return "—";
    return typeof v === "object" ? JSON.stringify(v) : v;
  }

  /* Details a person can read; the keys the log's own entries use are put in words. */
  function details(e) {
    const d = e.details || {};
    const lines = [];
    if (d.reason) lines.push(REASONS[d.reason] || d.reason);
    if (d.error) lines.push(t(d.error));
    if (e.action === "sign_in_locked") {
      lines.push(tn("after {n} failed attempt", "after {n} failed attempts", d.failures || 0));
      if (d.until) lines.push(t("locked until {time}", { time: fmtTime(d.until) }));
    }
    if (d.repeated) {
      lines.push(tn("{n} more time, until {time}", "{n} more times, until {time}", d.repeated, { time: fmtTime(d.until) }));
      if ((d.targets || []).length) lines.push(t("for example: {paths}", { paths: d.targets.join(", ") }));
    }
    const shown = new Set(["reason", "error", "status", "repeated", "since", "until", "targets", "failures", "scope"]);
    const rest = Object.entries(d).filter(([k]) => !shown.has(k));
    if (rest.length) lines.push(el("span", { class: "mono" }, rest.map(([k, v]) => `${KEYS[k] || k}: ${value(k, v)}`).join("; ")));
    return lines.length ? lines.map((line) => el("div", {}, line)) : "—";
  }

  /* A target is "kind:id" in the log; a person reads it in words. */
  const FIGURES = { lost_leads: t("Lost leads"), missed: t("Missed calls"), answered: t("Answered calls"),
                    offered: t("Offered"), abandoned: t("Abandoned calls"), queue_answered: t("Answered in queue") };
  const TARGETS = {
    client: (id) => t("card {id}", { id }),
    manager: (ext) => t("extension {ext}", { ext }),
    call: (id) => t("call {id}", { id }),
    recording: (id) => t("recording {id}", { id }),
    kpi: (code) => t("figure «{figure}»", { figure: FIGURES[code] || code.replaceAll("_", " ") }),
  };

  function target(e) {
    const d = e.details || {};
    if (e.action === "sign_in_locked" && d.scope) {
      return `${SCOPES[d.scope] || d.scope}: ${(e.target || "").split(":").slice(1).join(":")}`;
    }
    const [kind, ...rest] = (e.target || "").split(":");
    if (rest.length && TARGETS[kind]) return TARGETS[kind](rest.join(":"));
    return e.target || "—";
  }

  const params = new URLSearchParams(location.search);
  let page = Math.max(1, Number(params.get("page")) || 1);
  let action = params.get("action") || "";

  const chooser = el("select", { id: "audit-action", name: "action" },
    el("option", { value: "" }, t("All actions")),
    Object.entries(ACTIONS).map(([code, name]) => el("option", { value: code }, name)));
  if (action && !(action in ACTIONS)) chooser.append(el("option", { value: action }, actionName(action)));
  chooser.value = action;
  const total = el("p", { class: "muted small audit-total", role: "status" });
  const table = el("table", { class: "grid audit-grid" });
  const pager = el("div", { class: "pager" });
  clear(root,
    el("h1", {}, t("Audit log")),
    el("div", { class: "toolbar audit-filter" }, el("label", {}, t("Action"), chooser), total),
    el("div", { class: "card flush" }, table),
    pager);

  const HEADINGS = [t("When"), t("Who"), t("Role"), t("Action"), t("What"), t("Details"), t("Address")];

  function cell(i, ...content) {
    // The heading goes with the cell: on a phone each entry is a card with its labels.
    return el("td", { "data-label": HEADINGS[i] }, ...content);
  }

  function row(e) {
    return el("tr", { class: "action-" + e.action.replaceAll(".", "-") },
      cell(0, el("span", { class: "num" }, fmtTime(e.at))),
      cell(1, e.username || t("not signed in")),
      cell(2, e.role ? roleName(e.role) : "—"),
      cell(3, el("span", { class: "audit-action" }, actionName(e.action))),
      cell(4, el("span", { class: "audit-target" }, target(e))),
      cell(5, el("div", { class: "small audit-details" }, details(e))),
      cell(6, e.ip || "—"));
  }

  function link(toPage, text) {
    const q = new URLSearchParams();
    if (action) q.set("action", action);
    if (toPage > 1) q.set("page", String(toPage));
    return el("a", { class: "button", href: "?" + q.toString(), onclick: (ev) => { ev.preventDefault(); show(toPage); } }, text);
  }

  async function show(toPage) {
    page = toPage;
    const q = new URLSearchParams({ page: String(page) });
    if (action) q.set("action", action);
    history.replaceState(null, "", "?" + q.toString());
    let data;
    try {
      data = await api(`/api/audit?${q.toString()}`);
    } catch (err) {
      notice(err.message, "error");
      return;
    }
    clear(table,
      el("thead", {}, el("tr", {}, HEADINGS.map((h) => el("th", {}, h)))),
      el("tbody", {}, data.items.length ? data.items.map(row)
        : el("tr", {}, el("td", { class: "empty", colspan: HEADINGS.length }, t("No entries.")))));
    clear(total, tn("{n} entry", "{n} entries", data.total));
    const pages = Math.max(1, Math.ceil(data.total / data.per_page));
    clear(pager, page > 1 ? link(page - 1, t("← Newer")) : null, page < pages ? link(page + 1, t("Older →")) : null);
  }

  chooser.addEventListener("change", () => {
    action = chooser.value;
    show(1);
  });
  show(page);
})();
