/* The head's checklists: which calls each applies to and the items a manager's speech is checked
   against (phrases, whose side, when in the call, must be said or a stop phrase). Saving one
   re-checks the past calls in the background; the page follows that re-check until it is done. */
"use strict";

(() => {
  const { t, tn, api, el, clear, notice, fmtTime } = PBX;
  const root = document.getElementById("checklists-page");
  const POLL_MS = 1000;
  const DIRECTIONS = [["inbound", t("inbound")], ["outbound", t("outbound")], ["internal", t("internal")]];
  const SIDES = [["any", t("Either side")], ["manager", t("The manager")], ["client", t("The client")]];
  const WHEN = [["anywhere", t("Anywhere in the call")], ["within", t("In the first seconds after the answer")],
    ["last", t("In the last seconds before the end")]];

  let checklists = [];
  let recheck = null;
  let polling = null;
  const listBox = el("div", { id: "checklist-list" });
  const editorBox = el("div", { id: "checklist-editor" });
  const progressBox = el("p", { id: "recheck", class: "recheck", "aria-live": "polite" });

  /* ---------- the re-check of past calls ---------- */

  function showProgress() {
    if (!recheck) {
      clear(progressBox);
      progressBox.hidden = true;
      return;
    }
    progressBox.hidden = false;
    progressBox.dataset.status = recheck.status;
    let text;
    if (recheck.status === "queued") text = t("Re-check of past calls: waiting to start");
    else if (recheck.status === "running") {
      text = t("Re-checking past calls: {done} of {total}", { done: recheck.done, total: recheck.total });
    } else if (recheck.status === "failed") {
      text = t("The re-check of past calls failed: {reason}", { reason: recheck.error || "—" });
    } else {
      text = tn("Past calls re-checked: {n} call", "Past calls re-checked: {n} calls", recheck.total);
      if (recheck.finished_at) text = `${text} · ${fmtTime(recheck.finished_at)}`;
    }
    const bar = recheck.status === "running" && recheck.total
      ? el("progress", { max: recheck.total, value: recheck.done, "aria-hidden": "true" }) : null;
    clear(progressBox, text, bar ? " " : null, bar);
  }

  function follow() {
    if (polling || !recheck || !["queued", "running"].includes(recheck.status)) return;
    polling = setInterval(async () => {
      try {
        const data = await api("/api/checklists");
        recheck = data.recheck;
        showProgress();
      } catch (err) {
        return;  // asked again next time
      }
      if (!recheck || !["queued", "running"].includes(recheck.status)) {
        clearInterval(polling);
        polling = null;
      }
    }, POLL_MS);
  }

  /* ---------- the list ---------- */

  function appliesText(applies) {
    const parts = [];
    if (applies.direction && applies.direction.length) {
      const names = Object.fromEntries(DIRECTIONS);
      parts.push(applies.direction.map((d) => names[d] || d).join(", "));
    }
    if (applies.queue && applies.queue.length) parts.push(t("queues {queues}", { queues: applies.queue.join(", ") }));
    if (applies.min_talk_s) parts.push(t("talk from {duration}", { duration: PBX.fmtDuration(applies.min_talk_s) }));
    return parts.length ? parts.join(" · ") : t("every call");
  }

  async function remove(entry) {
    if (!confirm(t("Delete the checklist “{name}” and its results in every call?", { name: entry.name }))) return;
    try {
      await api(`/api/checklists/${encodeURIComponent(entry.name)}`, { method: "DELETE" });
      notice(t("Checklist deleted."), "ok");
      await reload();
    } catch (err) {
      notice(t("Not deleted: {reason}", { reason: err.message }), "error");
    }
  }

  function drawList() {
    if (!checklists.length) {
      clear(listBox, el("p", { class: "muted" }, t("No checklists yet. Create one: the calls are checked against it.")));
      return;
    }
    clear(listBox, el("ul", { class: "checklists" }, checklists.map((c) => el("li", {
      class: "card checklist-card", dataset: { name: c.name } },
      el("div", { class: "checklist-head" },
        el("h2", {}, c.name),
        el("span", { class: "muted small" }, t("version {version}, {time}", { version: c.version, time: fmtTime(c.updated_at) }))),
      el("p", { class: "muted small" }, t("Applies to: {calls}", { calls: appliesText(c.applies) }), " · ",
        tn("{n} item", "{n} items", c.items.length)),
      el("div", { class: "checklist-actions" },
        el("button", { type: "button", class: "edit", onclick: () => edit(c) }, t("Edit")),
        el("button", { type: "button", class: "link danger delete",
                       "aria-label": t("Delete the checklist “{name}”", { name: c.name }), onclick: () => remove(c) },
          t("Delete")))))));
  }

  /* ---------- the editor ---------- */

  // What the server says of a refused field (after "field: "), as the head reads it; anything
  // else it may say is shown as it came.
  const PROBLEM_TEXT = {
    "a text is needed": t("Write it: it cannot be empty."),
    "at least one phrase is needed": t("Write at least one phrase."),
    "a number of seconds above 0": t("A number of seconds above 0."),
    "a number of seconds, 0 or more": t("A number of seconds, 0 or more."),
    "a text or a list of texts": t("Write the words, not leave them blank."),
    "within_s (from the answer) or last_s (before the end), not both": t("Either from the answer or before the end, not both."),
  };
  const PHRASE_TOO_LONG = /^'(.*)' has more than (\d+) words$/;

  function problemText(problem) {
    const cut = problem.indexOf(": ");
    const text = cut < 0 ? problem : problem.slice(cut + 2);
    if (PROBLEM_TEXT[text]) return PROBLEM_TEXT[text];
    const long = PHRASE_TOO_LONG.exec(text);
    if (long) return t("“{phrase}” is longer than {n} words: a phrase is a few words said together.",
      { phrase: long[1], n: long[2] });
    return problem;
  }

  // A field the server refused, marked where the head can see it (its problems under it).
  function markField(field, text) {
    field.setAttribute("aria-invalid", "true");
    const box = field.closest("[data-field]") || field;
    let list = box.querySelector(":scope > .field-problems");
    if (!list) {
      list = el("ul", { class: "field-problems" });
      box.append(list);
    }
    list.append(el("li", {}, text));
  }

  function itemBlock(form, item = { title: "", phrases: [], side: "any", must: true }) {
    let when = "anywhere";
    if (item.within_s) when = "within";
    else if (item.last_s) when = "last";
    const seconds = el("input", { type: "number", name: "seconds", min: 1, step: 1, inputmode: "numeric",
      value: item.within_s || item.last_s || "", "aria-label": t("Seconds"), hidden: when === "anywhere" });
    const whenSelect = el("select", { name: "when", "aria-label": t("When") },
      WHEN.map(([v, text]) => el("option", { value: v, selected: v === when }, text)));
    whenSelect.addEventListener("change", () => {
      seconds.hidden = whenSelect.value === "anywhere";
      if (!seconds.hidden && !seconds.value) seconds.value = whenSelect.value === "within" ? 30 : 60;
    });
    const block = el("fieldset", { class: "checklist-item" },
      el("legend", {}),  // "Item 2": numbered by renumber()
      el("label", { "data-field": "title" }, t("Title"),
        el("input", { name: "title", value: item.title, placeholder: t("Named the company") })),
      el("label", { "data-field": "phrases" }, t("Phrases, one per line"),
        el("textarea", { name: "phrases", rows: 3 }, item.phrases.join("\n"))),
      el("div", { class: "item-options" },
        el("label", { "data-field": "side" }, t("Said by"),
          el("select", { name: "side" }, SIDES.map(([v, text]) => el("option", { value: v, selected: v === item.side }, text)))),
        el("label", { "data-field": "when" }, t("When"), el("span", { class: "when" }, whenSelect, seconds)),
        el("label", { "data-field": "must" }, t("Kind"),
          el("select", { name: "must" },
            el("option", { value: "true", selected: item.must !== false }, t("Must be said")),
            el("option", { value: "false", selected: item.must === false }, t("Stop phrase: must not be said"))))),
      el("button", { type: "button", class: "link danger", onclick: () => {
        const list = block.parentNode;
        block.remove();
        if (list) renumber(list);
      } }, t("Remove the item")));
    return block;
  }

  function renumber(list) {
    list.querySelectorAll(".checklist-item > legend").forEach((legend, i) => {
      legend.textContent = t("Item {n}", { n: i + 1 });
    });
  }

  function edit(existing) {
    const isNew = !existing;
    const c = existing || { name: "", applies: {}, items: [{ title: "", phrases: [], side: "any", must: true }] };
    const form = el("form", { class: "card checklist-form", id: "checklist-form", novalidate: true });
    const name = el("input", { name: "name", value: c.name, readonly: !isNew, required: true });
    const directions = DIRECTIONS.map(([v, text]) => el("label", { class: "chip" },
      el("input", { type: "checkbox", name: "direction", value: v, checked: (c.applies.direction || []).includes(v) }), text));
    const queues = el("input", { name: "queue", value: (c.applies.queue || []).join(", "), placeholder: "sales, 400" });
    const minTalk = el("input", { type: "number", name: "min_talk_s", min: 0, step: 1, inputmode: "numeric",
      value: c.applies.min_talk_s || "" });
    const items = el("div", { class: "checklist-items" });
    for (const item of c.items) items.append(itemBlock(form, item));
    renumber(items);
    const problems = el("div", { class: "form-problems", id: "form-problems", "aria-live": "polite" });
    const save = el("button", { type: "submit", class: "primary", id: "checklist-save" }, t("Save the checklist"));
    clear(form,
      el("h2", {}, isNew ? t("New checklist") : t("Checklist “{name}”", { name: c.name })),
      el("label", { "data-field": "name" }, t("Name"), name,
        isNew ? null : el("span", { class: "muted small" }, t("To rename a checklist, create a new one and delete this one."))),
      el("fieldset", { class: "applies" }, el("legend", {}, t("Which calls it applies to")),
        el("div", { class: "chips", "data-field": "applies.direction" }, directions),
        el("label", { "data-field": "applies.queue" }, t("Queues, comma-separated (empty: any)"), queues),
        el("label", { "data-field": "applies.min_talk_s" }, t("Talk at least, seconds"), minTalk)),
      el("h3", {}, t("Items")),
      items,
      el("button", { type: "button", id: "add-item", onclick: () => {
        items.append(itemBlock(form));
        renumber(items);
      } }, t("Add an item")),
      problems,
      el("div", { class: "form-actions" }, save,
        el("button", { type: "button", class: "link", onclick: () => clear(editorBox) }, t("Cancel"))));

    function body() {
      const num = (input) => (input.value.trim() === "" ? undefined : Number(input.value));
      const applies = {};
      const dirs = directions.map((l) => l.firstChild).filter((b) => b.checked).map((b) => b.value);
      if (dirs.length) applies.direction = dirs;
      const qs = queues.value.split(",").map((q) => q.trim()).filter(Boolean);
      if (qs.length) applies.queue = qs;
      if (num(minTalk) !== undefined) applies.min_talk_s = num(minTalk);
      return {
        name: name.value.trim(),
        applies,
        items: Array.from(items.querySelectorAll(".checklist-item")).map((block) => {
          const field = (n) => block.querySelector(`[name=${n}]`);
          const entry = {
            title: field("title").value.trim(),
            phrases: field("phrases").value.split("\n").map((p) => p.trim()).filter(Boolean),
            side: field("side").value,
            must: field("must").value === "true",
          };
          const when = field("when").value;
          if (when !== "anywhere") entry[when === "within" ? "within_s" : "last_s"] = num(field("seconds")) ?? 0;
          return entry;
        }),
      };
    }

    /* "items[2].phrases: ..." marks the third item's phrases; "name: ..." the name. */
    function showProblems(list) {
      const blocks = Array.from(items.querySelectorAll(".checklist-item"));
      const unplaced = [];
      for (const problem of list) {
        const path = problem.split(":")[0];
        const match = /^items\[(\d+)\](?:\.(\w+))?$/.exec(path);
        let field = null;
        if (match && blocks[Number(match[1])]) {
          const block = blocks[Number(match[1])];
          const key = { within_s: "when", last_s: "when" }[match[2]] || match[2];
          field = key ? block.querySelector(`[data-field=${key}] [name], [data-field=${key}] select`) : block;
        } else if (path === "name") field = name;
        else if (path === "applies.direction") field = form.querySelector("[data-field='applies.direction']");
        else if (path === "applies.queue") field = queues;
        else if (path === "applies.min_talk_s") field = minTalk;
        if (field) markField(field, problemText(problem)); else unplaced.push(problem);
      }
      clear(problems, el("p", { class: "error" }, t("The checklist was not saved: fix the fields marked.")),
        unplaced.length ? el("ul", { class: "error" }, unplaced.map((p) => el("li", {}, p))) : null);
      const first = form.querySelector("[aria-invalid=true]");
      if (first && first.focus) first.focus();
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      for (const f of form.querySelectorAll("[aria-invalid]")) f.removeAttribute("aria-invalid");
      for (const l of form.querySelectorAll(".field-problems")) l.remove();
      clear(problems);
      save.disabled = true;
      try {
        const saved = await api("/api/checklists", { method: "PUT", json: body() });
        notice(saved.changed ? t("Checklist saved: past calls are being re-checked.") : t("No changes to save."), "ok");
        clear(editorBox);
        recheck = saved.recheck;
        await reload();
      } catch (err) {
        if (err.body && Array.isArray(err.body.problems)) showProblems(err.body.problems);
        else clear(problems, el("p", { class: "error" }, t("Not saved: {reason}", { reason: err.message })));
      } finally {
        save.disabled = false;
      }
    });
    clear(editorBox, form);
    form.scrollIntoView({ block: "start" });
    (isNew ? name : items.querySelector("[name=title]") || name).focus();
  }

  async function reload() {
    const data = await api("/api/checklists");
    checklists = data.checklists;
    recheck = data.recheck;
    drawList();
    showProgress();
    follow();
  }

  async function start() {
    clear(root,
      el("div", { class: "page-head" },
        el("h1", {}, t("Checklists")),
        el("button", { type: "button", class: "primary", id: "new-checklist", onclick: () => edit(null) }, t("New checklist"))),
      el("p", { class: "muted" }, t("Each transcribed call is checked against the checklists that apply to it; the player shows the results beside the transcript.")),
      progressBox, editorBox, listBox);
    try {
      await reload();
    } catch (err) {
      clear(listBox, el("p", { class: "error" }, err.message));
    }
  }
  start();
})();
