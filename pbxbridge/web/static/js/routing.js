/* Overflow routing rules: ring timeout, waiting limit, policy, groups of managers, business hours. */
"use strict";

(() => {
  const { api, el, clear, notice } = PBX;
  const root = document.getElementById("routing-page");
  const POLICIES = [["least_busy", "Least busy"], ["longest_idle", "Longest idle"], ["round_robin", "Round robin"]];
  const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
  const problems = el("div", { id: "problems" });

  const policySelect = (name, value, allowDefault) => el("select", { name },
    allowDefault ? el("option", { value: "", selected: !value }, "Department's policy") : null,
    POLICIES.map(([v, t]) => el("option", { value: v, selected: value === v }, t)));

  function groupRow(g = { name: "", members: [], policy: null, queue_destination: null }) {
    const row = el("tr", { class: "group-row" },
      el("td", {}, el("input", { name: "g_name", value: g.name, placeholder: "sales-1", required: true })),
      el("td", {}, el("input", { name: "g_members", value: g.members.join(", "), placeholder: "201, 202, 203" })),
      el("td", {}, policySelect("g_policy", g.policy, true)),
      el("td", {}, el("input", { name: "g_queue", value: g.queue_destination || "", placeholder: "ext-queues,400,1" })),
      el("td", {}, el("button", { type: "button", class: "link danger", onclick: () => row.remove() }, "Remove")));
    return row;
  }

  function hoursRow(h = { weekday: 0, opens: "09:00", closes: "18:00" }) {
    const row = el("tr", { class: "hours-row" },
      el("td", {}, el("select", { name: "h_day" }, DAYS.map((d, i) => el("option", { value: i, selected: h.weekday === i }, d)))),
      el("td", {}, el("input", { name: "h_opens", type: "time", value: h.opens })),
      el("td", {}, el("input", { name: "h_closes", type: "time", value: h.closes === "24:00" ? "23:59" : h.closes })),
      el("td", {}, el("button", { type: "button", class: "link danger", onclick: () => row.remove() }, "Remove")));
    return row;
  }

  function render(rules) {
    clear(problems);
    const field = (label, name, attrs = {}) => el("label", {}, label, el("input", { name, value: rules[name] ?? "", ...attrs }));
    const groups = el("tbody", {}, rules.groups.map(groupRow));
    const hours = el("tbody", {}, rules.hours.map(hoursRow));
    const form = el("form", { id: "rules-form" },
      el("section", { class: "card" }, el("h2", {}, "When a manager's client calls"),
        el("div", { class: "filter-grid" },
          field("Ring the manager for, s", "ring_timeout_s", { type: "number", min: 1 }),
          field("Overflow above … waiting", "max_waiting", { type: "number", min: 0 }),
          el("label", {}, "Pick a colleague by", policySelect("policy", rules.policy, false)),
          field("Time zone", "timezone"),
          field("Queue (context,exten,priority)", "queue_destination"),
          field("After hours go to", "after_hours_destination", { placeholder: "same as the queue" }),
          field("Dial string", "dial_template"),
          field("Default group", "default_group"))),
      el("section", { class: "card" }, el("h2", {}, "Groups"),
        el("table", { class: "grid edit-table" },
          el("thead", {}, el("tr", {}, ["Name", "Members (extensions)", "Policy", "Queue", ""].map((h) => el("th", {}, h)))), groups),
        el("button", { type: "button", class: "button", onclick: () => groups.append(groupRow()) }, "+ Add group")),
      el("section", { class: "card" }, el("h2", {}, "Business hours"),
        el("p", { class: "muted small" }, "No hours: always open."),
        el("table", { class: "grid edit-table" },
          el("thead", {}, el("tr", {}, ["Day", "Opens", "Closes", ""].map((h) => el("th", {}, h)))), hours),
        el("button", { type: "button", class: "button", onclick: () => hours.append(hoursRow()) }, "+ Add hours")),
      problems,
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Save rules")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = form.elements;
      const body = {
        ring_timeout_s: Number(f.ring_timeout_s.value), max_waiting: Number(f.max_waiting.value),
        policy: f.policy.value, timezone: f.timezone.value, queue_destination: f.queue_destination.value,
        after_hours_destination: f.after_hours_destination.value, dial_template: f.dial_template.value,
        default_group: f.default_group.value || null,
        groups: [...groups.querySelectorAll("tr")].map((tr) => ({
          name: tr.querySelector("[name=g_name]").value.trim(),
          members: tr.querySelector("[name=g_members]").value.split(/[\s,;]+/).filter(Boolean),
          policy: tr.querySelector("[name=g_policy]").value || null,
          queue_destination: tr.querySelector("[name=g_queue]").value.trim() || null,
        })),
        hours: [...hours.querySelectorAll("tr")].map((tr) => ({
          weekday: Number(tr.querySelector("[name=h_day]").value),
          opens: tr.querySelector("[name=h_opens]").value, closes: tr.querySelector("[name=h_closes]").value,
        })),
      };
      try {
        render(await api("/api/routing/rules", { method: "PUT", json: body }));
        notice("Rules saved; the next call is routed by them.", "ok");
      } catch (err) {
        const list = (err.body && err.body.problems) || [err.message];
        clear(problems, el("div", { class: "card error" }, el("strong", {}, "Not saved:"), el("ul", {}, list.map((p) => el("li", {}, p)))));
      }
    });
    clear(root, el("h1", {}, "Routing rules"), form);
  }

  api("/api/routing/rules").then(render).catch((err) => clear(root, el("p", { class: "error" }, err.message)));
})();
