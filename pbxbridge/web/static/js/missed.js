/* Missed calls to return: one row per client, Call back and Close on each; new misses of the
   manager's own clients announced while the page is open. */
"use strict";

(() => {
  const { t, tn, api, el, clear, fmtTime, fmtDuration, badge, notice, managerLabel, role, extension } = PBX;
  const root = document.getElementById("missed-page");
  const isHead = role === "head";
  // How often the list is read again; faster for a while after a Call back, so the row closes soon.
  const POLL_MS = 15000;
  const FAST_POLL_MS = 3000;
  const FAST_FOR_MS = 120000;

  const REASONS = () => ({
    spam: t("Spam"),
    wrong_number: t("Wrong number"),
    reached_otherwise: t("Reached by other means"),
  });
  const ATTEMPT_STATUS = () => ({ busy: t("busy"), no_answer: t("no answer") });

  const summary = el("p", { class: "muted", id: "missed-summary", "aria-live": "polite" });
  const alertBox = el("div", { id: "missed-alert", role: "alert" });
  const list = el("div", { id: "missed-list", class: "missed-list" });
  const bulk = el("div", { class: "card missed-bulk", hidden: !isHead });
  clear(root, el("h1", {}, t("Missed calls")), alertBox, summary, bulk, list);

  let known = null; // client id -> last missed call id, as last shown
  let fastUntil = 0;
  let timer = null;
  let managers = [];

  const iso = (ts) => (ts === null || ts === undefined ? null : new Date(ts * 1000).toISOString());

  function when(ts) {
    return el("time", { datetime: iso(ts) }, fmtTime(iso(ts)));
  }

  function fact(label, value, cls) {
    return el("div", { class: "fact" + (cls ? " " + cls : "") }, el("span", { class: "label" }, label), " ",
      el("span", { class: "value" }, value));
  }

  function rowView(row) {
    const title = row.client_name || row.number_display || `#${row.client_id}`;
    const closeForm = closeFormFor(row);
    const callButton = el("button", {
      class: "primary call-back", type: "button", "data-client-id": row.client_id,
      disabled: !extension && !(isHead && row.manager),
      title: !extension && !(isHead && row.manager) ? t("Nobody's handset to ring: assign a manager first") : null,
      onclick: () => callBack(row, callButton),
    }, t("Call back"));
    const closeButton = el("button", {
      class: "close-row", type: "button", "aria-expanded": "false",
      onclick: () => {
        const open = closeForm.hidden;
        closeForm.hidden = !open;
        closeButton.setAttribute("aria-expanded", String(open));
      },
    }, t("Close"));
    const pick = isHead
      ? el("input", { type: "checkbox", class: "pick", value: row.client_id, "aria-label": t("Select {client}", { client: title }) })
      : null;
    const attempts = row.callback_attempts
      ? tn("{n} attempt, last {when}: {status}", "{n} attempts, last {when}: {status}", row.callback_attempts, {
        when: fmtTime(iso(row.last_attempt_at)),
        status: ATTEMPT_STATUS()[row.last_attempt_status] || row.last_attempt_status,
      })
      : t("not called back yet");
    return el("article", {
      class: "missed-row" + (row.overdue ? " overdue" : ""),
      "data-client-id": row.client_id, "data-last-call-id": row.last_missed_call_id,
    },
      el("header", {},
        pick,
        el("a", { href: `/clients/${row.client_id}`, class: "client strong" }, title),
        row.client_name ? el("span", { class: "number" }, row.number_display) : null,
        row.overdue ? badge("overdue", t("Overdue")) : null,
        row.lost ? badge("lost", t("Lost lead")) : null),
      el("div", { class: "facts-row" },
        fact(t("Called"), tn("{n} time", "{n} times", row.missed_calls)),
        fact(t("Last call"), when(row.last_missed_at)),
        fact(t("Waited"), fmtDuration(row.waited_s)),
        fact(t("Waiting for a callback"), el("span", { class: "open-for", "data-opened-at": row.opened_at },
          fmtDuration(row.open_s)), row.overdue ? "late" : null),
        fact(t("Manager"), row.manager ? managerLabel(row.manager, row.manager_name) : t("Unassigned")),
        fact(t("Callback"), attempts)),
      el("div", { class: "actions" }, callButton, closeButton),
      closeForm);
  }

  function closeFormFor(row) {
    const reasons = REASONS();
    const select = el("select", { name: "reason", "aria-label": t("Reason") },
      Object.entries(reasons).map(([value, text]) => el("option", { value }, text)));
    const form = el("form", { class: "close-form", hidden: true },
      el("label", {}, t("Reason"), select),
      el("button", { type: "submit", class: "primary" }, t("Close the row")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        await api(`/api/missed/${row.client_id}/close`, {
          method: "POST", json: { reason: select.value, through_call_id: row.last_missed_call_id },
        });
        notice(t("Closed: {reason}", { reason: reasons[select.value] }), "ok");
        await refresh();
      } catch (err) {
        notice(err.message, "error");
        button.disabled = false;
      }
    });
    return form;
  }

  async function callBack(row, button) {
    button.disabled = true;
    try {
      const body = isHead && !extension && row.manager ? { extension: row.manager } : {};
      const answer = await api(`/api/missed/${row.client_id}/call`, { method: "POST", json: body });
      notice(t("Your handset {extension} is ringing: pick it up to call {number}", {
        extension: answer.extension, number: row.number_display,
      }), "ok");
      fastUntil = Date.now() + FAST_FOR_MS;
      schedule();
    } catch (err) {
      notice(err.message, "error");
    } finally {
      setTimeout(() => { button.disabled = false; }, 5000);
    }
  }

  function announce(newRows) {
    // A manager hears of their own clients; the head of every client nobody is responsible for.
    const mine = newRows.filter((r) => (extension && r.manager === extension) || (isHead && !r.manager));
    if (!mine.length) return;
    const names = mine.map((r) => r.client_name || r.number_display).join(", ");
    clear(alertBox, el("div", { class: "notice notice-alert" },
      tn("Missed call from your client: {names}", "Missed calls from your clients: {names}", mine.length, { names }),
      " ",
      el("button", { type: "button", class: "link", onclick: () => clear(alertBox) }, t("Dismiss"))));
  }

  function renderBulk() {
    if (!isHead) return;
    const select = el("select", { name: "manager", "aria-label": t("Responsible manager") },
      el("option", { value: "" }, t("Nobody")),
      managers.map((m) => el("option", { value: m.extension }, managerLabel(m.extension, m.name))));
    const button = el("button", { type: "button", class: "assign" }, t("Assign selected"));
    button.addEventListener("click", async () => {
      const ids = [...list.querySelectorAll("input.pick:checked")].map((c) => Number(c.value));
      if (!ids.length) {
        notice(t("Select the clients to assign first"), "error");
        return;
      }
      button.disabled = true;
      try {
        const answer = await api("/api/clients/assign", {
          method: "POST", json: { client_ids: ids, manager: select.value || null },
        });
        notice(tn("{n} card reassigned", "{n} cards reassigned", answer.assigned), "ok");
        await refresh();
      } catch (err) {
        notice(err.message, "error");
      } finally {
        button.disabled = false;
      }
    });
    clear(bulk, el("div", { class: "toolbar" },
      el("label", {}, t("Responsible manager"), select), button));
  }

  async function refresh() {
    let data;
    try {
      data = await api("/api/missed");
    } catch (err) {
      summary.textContent = err.message;
      return;
    }
    const rows = data.items;
    if (known !== null) {
      announce(rows.filter((r) => known.get(r.client_id) !== r.last_missed_call_id
        && r.last_missed_call_id > (known.get(r.client_id) || 0)));
    }
    known = new Map(rows.map((r) => [r.client_id, r.last_missed_call_id]));
    summary.textContent = rows.length
      ? [tn("{n} client to call back", "{n} clients to call back", rows.length),
         data.overdue ? tn("{n} overdue", "{n} overdue", data.overdue) : null].filter(Boolean).join(" · ")
      : t("Nobody is waiting for a callback.");
    const checked = new Set([...list.querySelectorAll("input.pick:checked")].map((c) => c.value));
    clear(list, rows.map(rowView));
    for (const box of list.querySelectorAll("input.pick")) box.checked = checked.has(box.value);
  }

  function schedule() {
    clearTimeout(timer);
    const wait = Date.now() < fastUntil ? FAST_POLL_MS : POLL_MS;
    timer = setTimeout(async () => {
      await refresh();
      schedule();
    }, wait);
  }

  // How long each row has waited, ticking between reads of the list.
  setInterval(() => {
    const now = Date.now() / 1000;
    for (const span of list.querySelectorAll(".open-for")) {
      span.textContent = fmtDuration(Math.max(0, now - Number(span.dataset.openedAt)));
    }
  }, 30000);

  (async () => {
    if (isHead) {
      try {
        managers = (await api("/api/managers")).items;
      } catch (err) {
        managers = [];
      }
      renderBulk();
    }
    await refresh();
    schedule();
  })();
})();
