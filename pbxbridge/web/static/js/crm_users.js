/* Managers' users in the CRM: which Bitrix24 / amoCRM user each extension is, kept by the head.
   A call goes to the CRM as its manager's user; a sync from Bitrix24 leaves what is set here alone. */
"use strict";

(() => {
  const { t, tn, api, el, clear, fmtTime, notice, managerLabel } = PBX;
  const root = document.getElementById("crm-users-page");
  const CRM_NAMES = { bitrix24: "Bitrix24", amocrm: "amoCRM" };
  const SOURCES = { crm: t("from the CRM"), manual: t("set by hand") };
  const HEADINGS = [t("CRM"), t("Manager"), t("CRM user"), t("Name in the CRM"), t("Source"), t("Changed")];

  let managers = new Map();
  const status = el("p", { class: "muted small crm-users-total", role: "status" });
  const table = el("table", { class: "grid crm-users-grid" });
  const problems = el("div", { class: "crm-users-problem", "aria-live": "polite" });

  const crmSelect = el("select", { name: "target", "aria-label": t("CRM") });
  const extensionInput = el("input", { name: "extension", required: true, inputmode: "numeric", pattern: "[0-9]{1,32}",
    placeholder: "203", list: "crm-users-managers", "aria-label": t("Extension") });
  const managerList = el("datalist", { id: "crm-users-managers" });
  const userInput = el("input", { name: "user_id", required: true, inputmode: "numeric", pattern: "[0-9]{1,18}",
    placeholder: "9001", "aria-label": t("CRM user number") });
  const nameInput = el("input", { name: "name", maxlength: 200, placeholder: t("Ivanov"), "aria-label": t("Name in the CRM") });
  const form = el("form", { class: "toolbar crm-users-form", onsubmit: save },
    el("label", {}, t("CRM"), crmSelect),
    el("label", {}, t("Extension"), extensionInput, managerList),
    el("label", {}, t("CRM user number"), userInput),
    el("label", {}, t("Name in the CRM"), nameInput),
    el("button", { type: "submit", class: "primary" }, t("Save")));

  clear(root,
    el("h1", {}, t("CRM users")),
    el("p", { class: "muted crm-users-intro" },
      t("A call goes to the CRM as its manager's user. Bitrix24 users with an inner number are read by pbxbridge crm users sync; set the others here (amoCRM's user numbers are in its Settings → Users).")),
    el("div", { class: "card" }, form, problems),
    status,
    el("div", { class: "card flush" }, table));

  function cell(i, ...content) {
    // The heading goes with the cell: on a phone each mapping is a card of labelled lines.
    return el("td", { "data-label": HEADINGS[i] }, ...content);
  }

  function row(item) {
    const who = managers.get(item.extension);
    return el("tr", { class: "crm-user", dataset: { target: item.target, extension: item.extension } },
      cell(0, CRM_NAMES[item.target] || item.target),
      cell(1, managerLabel(item.extension, who)),
      cell(2, el("span", { class: "num" }, item.user_id)),
      cell(3, item.name || "—"),
      cell(4, el("span", { class: "badge source-" + item.source }, SOURCES[item.source] || item.source)),
      cell(5, el("span", { class: "num" }, fmtTime(item.updated_at))),
      el("td", { class: "row-actions" },
        el("button", { type: "button", class: "link", onclick: () => edit(item) }, t("Change")),
        el("button", { type: "button", class: "link danger", onclick: () => remove(item),
          "aria-label": t("Remove the CRM user of extension {extension}", { extension: item.extension }) }, t("Remove"))));
  }

  function edit(item) {
    crmSelect.value = item.target;
    extensionInput.value = item.extension;
    userInput.value = item.user_id;
    nameInput.value = item.name || "";
    userInput.focus();
  }

  async function load() {
    let data;
    try {
      data = await api("/api/crm/users");
    } catch (err) {
      clear(problems, el("p", { class: "error" }, err.message));
      return;
    }
    managers = new Map(data.managers.map((m) => [m.extension, m.name]));
    clear(managerList, data.managers.map((m) => el("option", { value: m.extension }, managerLabel(m.extension, m.name))));
    const chosen = crmSelect.value;
    clear(crmSelect, data.targets.map((code) => el("option", { value: code },
      data.configured.includes(code) ? CRM_NAMES[code] : t("{crm} (not connected)", { crm: CRM_NAMES[code] }))));
    crmSelect.value = chosen || data.configured[0] || data.targets[0];
    status.textContent = data.items.length
      ? tn("{n} extension mapped", "{n} extensions mapped", data.items.length)
      : "";
    clear(table,
      el("thead", {}, el("tr", {}, HEADINGS.map((h) => el("th", {}, h)), el("th", { "aria-label": t("Actions") }))),
      el("tbody", {}, data.items.length ? data.items.map(row)
        : el("tr", {}, el("td", { class: "empty", colspan: HEADINGS.length + 1 }, t("No extension is mapped to a CRM user yet.")))));
  }

  async function save(ev) {
    ev.preventDefault();
    clear(problems);
    const target = crmSelect.value;
    const extension = extensionInput.value.trim();
    try {
      await api(`/api/crm/users/${encodeURIComponent(target)}/${encodeURIComponent(extension)}`, {
        method: "PUT", json: { user_id: userInput.value.trim(), name: nameInput.value.trim() || null },
      });
    } catch (err) {
      clear(problems, el("p", { class: "error" }, err.message));
      return;
    }
    notice(t("Extension {extension} is user {user} in {crm}.", { extension, user: userInput.value.trim(), crm: CRM_NAMES[target] }), "ok");
    form.reset();
    crmSelect.value = target;
    await load();
  }

  async function remove(item) {
    if (!confirm(t("Forget the {crm} user of extension {extension}?", { crm: CRM_NAMES[item.target], extension: item.extension }))) return;
    try {
      await api(`/api/crm/users/${encodeURIComponent(item.target)}/${encodeURIComponent(item.extension)}`, { method: "DELETE" });
    } catch (err) {
      notice(err.message, "error");
      return;
    }
    await load();
  }

  load();
})();
