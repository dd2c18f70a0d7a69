/* Overflow routing rules: ring timeout, waiting limit, policy, groups of managers, business hours. */
"use strict";

(() => {
  const { t, api, el, clear, notice, language } = PBX;
  const root = document.getElementById("routing-page");
  const POLICIES = [["least_busy", t("Least busy")], ["longest_idle", t("Longest idle")], ["round_robin", t("Round robin")]];
  // Weekday names in the page's language, Monday first (2024-01-01 was a Monday).
  const weekdayName = new Intl.DateTimeFormat(language === "ru" ? "ru-RU" : "en-GB", { weekday: "long", timeZone: "UTC" });
  const DAYS = [0, 1, 2, 3, 4, 5, 6].map((i) => {
    const name = weekdayName.format(new Date(Date.UTC(2024, 0, 1 + i)));
    return name.charAt(0).toUpperCase() + name.slice(1);
  });
  // 00:00 .. 23:59, and 24:00 for "until the end of the day"; the server checks the same.
  const HHMM = "([01][0-9]|2[0-3]):[0-5][0-9]|24:00";
  const problems = el("div", { id: "problems", "aria-live": "polite" });

  const policySelect = (name, value, allowDefault, label) => el("select", { name, "aria-label": label },
    allowDefault ? el("option", { value: "", selected: !value }, t("Department's policy")) : null,
    POLICIES.map(([v, text]) => el("option", { value: v, selected: value === v }, text)));

  const cell = (label, ...content) => el("td", { "data-label": label }, ...content);

  function groupRow(g = { name: "", members: [], policy: null, queue_destination: null }) {
    const row = el("tr", { class: "group-row" },
      cell(t("Name"), el("input", { name: "g_name", value: g.name, placeholder: "sales-1", required: true, "aria-label": t("Name") })),
      cell(t("Members (extensions)"), el("input", { name: "g_members", value: g.members.join(", "), placeholder: "201, 202, 203",
        inputmode: "numeric", "aria-label": t("Members (extensions)") })),
      cell(t("Policy"), policySelect("g_policy", g.policy, true, t("Policy"))),
      cell(t("Queue"), el("input", { name: "g_queue", value: g.queue_destination || "", placeholder: "ext-queues,400,1", "aria-label": t("Queue") })),
      el("td", { class: "row-actions" }, el("button", { type: "button", class: "link danger", onclick: () => row.remove() }, t("Remove"))));
    return row;
  }

  function timeInput(name, value, label) {
    return el("input", { name, value, required: true, pattern: HHMM, inputmode: "numeric", maxlength: 5, placeholder: "09:00",
      class: "hhmm", "aria-label": label, title: t("A time from 00:00 to 24:00, for example 09:00 or 24:00") });
  }

  function hoursRow(h = { weekday: 0, opens: "09:00", closes: "18:00" }) {
    const row = el("tr", { class: "hours-row" },
      cell(t("Day"), el("select", { name: "h_day", "aria-label": t("Day") },
        DAYS.map((d, i) => el("option", { value: i, selected: h.weekday === i }, d)))),
      cell(t("Opens"), timeInput("h_opens", h.opens, t("Opens"))),
      cell(t("Closes"), timeInput("h_closes", h.closes, t("Closes"))),
      el("td", { class: "row-actions" }, el("button", { type: "button", class: "link danger", onclick: () => row.remove() }, t("Remove"))));
    return row;
  }

  /* What the saved hours mean, day by day: the hours themselves, "closed", or "round the clock". */
  function hoursSummary(hours) {
    if (!hours.length) {
      return el("p", { id: "hours-summary", class: "summary" }, t("No business hours are set: calls are routed as in business hours at any time."));
    }
    return el("ul", { id: "hours-summary", class: "summary" }, DAYS.map((day, i) => {
      const spans = hours.filter((h) => h.weekday === i).sort((a, b) => a.opens.localeCompare(b.opens));
      const text = !spans.length ? t("closed")
        : spans.length === 1 && spans[0].opens === "00:00" && spans[0].closes === "24:00" ? t("round the clock")
        : spans.map((h) => `${h.opens}–${h.closes}`).join(", ");
      return el("li", { class: spans.length ? "open" : "closed" }, el("span", { class: "day" }, day), " ", el("span", {}, text));
    }));
  }

  function showProblems(list, fields, groups) {
    for (const input of groups.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    (fields || []).forEach((field) => {
      const m = /^groups\[(\d+)\]\.members/.exec(field);
      const row = m && groups.querySelectorAll("tr")[Number(m[1])];
      if (row) row.querySelector("[name=g_members]").setAttribute("aria-invalid", "true");
    });
    clear(problems, el("div", { class: "card error", role: "alert" }, el("strong", {}, t("Not saved:")),
      el("ul", {}, list.map((p) => el("li", {}, p)))));
  }

  function render(rules) {
    clear(problems);
    const field = (label, name, attrs = {}) => el("label", {}, label, el("input", { name, value: rules[name] ?? "", ...attrs }));
    const groups = el("tbody", {}, rules.groups.map(groupRow));
    const hours = el("tbody", {}, rules.hours.map(hoursRow));
    const form = el("form", { id: "rules-form", novalidate: true },
      el("section", { class: "card" }, el("h2", {}, t("When a manager's client calls")),
        el("div", { class: "filter-grid" },
          field(t("Ring the manager for, s"), "ring_timeout_s", { type: "number", min: 1 }),
          field(t("Overflow above … waiting"), "max_waiting", { type: "number", min: 0 }),
          el("label", {}, t("Pick a colleague by"), policySelect("policy", rules.policy, false)),
          field(t("Time zone"), "timezone"),
          field(t("Queue (context,exten,priority)"), "queue_destination"),
          field(t("After hours go to"), "after_hours_destination", { placeholder: t("same as the queue") }),
          field(t("Dial string"), "dial_template"),
          field(t("Default group"), "default_group"))),
      el("section", { class: "card" }, el("h2", {}, t("Groups")),
        el("p", { class: "muted small" }, t("Members are extensions of managers, of users or of lines the PBX reported.")),
        el("table", { class: "grid edit-table", id: "groups-table" },
          el("thead", {}, el("tr", {}, [t("Name"), t("Members (extensions)"), t("Policy"), t("Queue"), ""].map((h) => el("th", {}, h)))), groups),
        el("button", { type: "button", class: "button", id: "add-group", onclick: () => groups.append(groupRow()) }, t("+ Add group"))),
      el("section", { class: "card" }, el("h2", {}, t("Business hours")),
        hoursSummary(rules.hours),
        el("p", { class: "muted small" }, t("Times are HH:MM; 24:00 closes at midnight, 00:00–24:00 is the whole day. A night shift is two lines, one on each day.")),
        el("table", { class: "grid edit-table", id: "hours-table" },
          el("thead", {}, el("tr", {}, [t("Day"), t("Opens"), t("Closes"), ""].map((h) => el("th", {}, h)))), hours),
        el("button", { type: "button", class: "button", id: "add-hours", onclick: () => hours.append(hoursRow()) }, t("+ Add hours"))),
      problems,
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, t("Save rules"))));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = form.elements;
      const body = {
        ring_timeout_s: Number(f.ring_timeout_s.value), max_waiting: Number(f.max_waiting.value),
        policy: f.policy.value, timezone: f.timezone.value.trim(), queue_destination: f.queue_destination.value.trim(),
        after_hours_destination: f.after_hours_destination.value.trim(), dial_template: f.dial_template.value.trim(),
        default_group: f.default_group.value.trim() || null,
        groups: [...groups.querySelectorAll("tr")].map((tr) => ({
          name: tr.querySelector("[name=g_name]").value.trim(),
          members: tr.querySelector("[name=g_members]").value.split(/[\s,;]+/).filter(Boolean),
          policy: tr.querySelector("[name=g_policy]").value || null,
          queue_destination: tr.querySelector("[name=g_queue]").value.trim() || null,
        })),
        hours: [...hours.querySelectorAll("tr")].map((tr) => ({
          weekday: Number(tr.querySelector("[name=h_day]").value),
          opens: tr.querySelector("[name=h_opens]").value.trim(), closes: tr.querySelector("[name=h_closes]").value.trim(),
        })),
      };
      try {
        render(await api("/api/routing/rules", { method: "PUT", json: body }));
        notice(t("Rules saved; the next call is routed by them."), "ok");
      } catch (err) {
        showProblems((err.body && err.body.problems) || [err.message], err.body && err.body.fields, groups);
      }
    });
    clear(root, el("h1", {}, t("Routing rules")), form);
  }

  api("/api/routing/rules").then(render).catch((err) => clear(root, el("p", { class: "error" }, err.message)));
})();
