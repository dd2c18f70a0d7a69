/* A client's card: numbers, manager, notes, click-to-call, and every call with its recording. */
"use strict";

(() => {
  const { api, el, clear, fmtTime, fmtDuration, badge, direction, managerLabel, notice } = PBX;
  const root = document.getElementById("client-page");
  const clientId = document.body.dataset.clientId;
  const isHead = PBX.role === "head";

  async function callNow(number, button, ringSelect) {
    button.disabled = true;
    try {
      const body = { client_id: Number(clientId), number };
      if (ringSelect) body.extension = ringSelect.value;
      const res = await api("/api/calls/originate", { method: "POST", json: body });
      notice(`Ringing ext ${res.extension}${PBX.extension === res.extension ? " (your handset)" : ""}; `
             + `the client ${res.number} is dialled when it is picked up.`, "ok");
    } catch (err) {
      notice(`Could not place the call: ${err.message}`, "error");
    } finally {
      setTimeout(() => { button.disabled = false; }, 3000);
    }
  }

  function timelineItem(call) {
    const transcriptBox = el("div", { class: "mini-transcript" });
    const toggle = call.has_transcript ? el("button", { type: "button", class: "link", onclick: async () => {
      if (transcriptBox.childElementCount) { clear(transcriptBox); return; }
      const full = await api(`/api/calls/${call.id}`);
      clear(transcriptBox, full.transcript.map((s) => el("p", {},
        el("a", { href: `/calls/${call.id}?t=${s.start}&rec=${s.recording_id || ""}`, class: "time" }, PBX.fmtClock(s.start)),
        s.speaker ? el("span", { class: "speaker speaker-" + s.speaker }, s.speaker) : null, " ", s.text)));
    } }, "Transcript") : null;
    return el("li", { class: "timeline-item status-" + call.status },
      el("div", { class: "when" }, el("a", { href: `/calls/${call.id}` }, fmtTime(call.started_at))),
      el("div", { class: "what" },
        direction(call.direction), " ", badge(call.status), " ",
        el("span", {}, managerLabel(call.manager, call.manager_name)),
        el("span", { class: "muted" }, ` · wait ${fmtDuration(call.wait_s)} · talk ${fmtDuration(call.talk_s)}`),
        call.playable.length ? el("audio", { controls: true, preload: "none", src: call.playable[0].audio_url }) : null,
        toggle, transcriptBox));
  }

  async function load() {
    let card, managers = [];
    try {
      [card, managers] = await Promise.all([api(`/api/clients/${clientId}`), api("/api/managers").then((d) => d.items)]);
    } catch (err) {
      clear(root, el("p", { class: "error" }, err.message));
      return;
    }
    const name = el("input", { name: "name", value: card.name || "", placeholder: "Client's name" });
    const lead = el("select", { name: "is_lead" },
      el("option", { value: "true", selected: card.is_lead }, "Lead"),
      el("option", { value: "false", selected: !card.is_lead }, "Client"));
    const responsible = el("select", { name: "responsible_manager", disabled: !isHead },
      el("option", { value: "" }, "Nobody"),
      managers.map((m) => el("option", { value: m.extension, selected: m.extension === card.responsible_manager },
                                       managerLabel(m.extension, m.name))));
    const notes = el("textarea", { name: "notes", rows: 6, placeholder: "Notes about this client…" }, card.notes);
    const save = el("button", { type: "submit", class: "primary" }, "Save");
    const form = el("form", { class: "card edit", id: "card-form" },
      el("label", {}, "Name", name),
      el("label", {}, "Stage", lead),
      el("label", {}, "Responsible manager", responsible),
      el("label", { class: "wide" }, "Notes", notes),
      el("div", { class: "wide" }, save));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { name: name.value, notes: notes.value, is_lead: lead.value === "true" };
      if (isHead) body.responsible_manager = responsible.value || null;
      try {
        await api(`/api/clients/${clientId}`, { method: "PATCH", json: body });
        notice("Saved.", "ok");
      } catch (err) {
        notice(`Not saved: ${err.message}`, "error");
      }
    });
    const numbers = el("ul", { class: "numbers" }, card.numbers.map((n) => {
      const button = el("button", { type: "button", class: "primary call-button", dataset: { number: n } }, "Call");
      // The head of sales has no handset of their own: they pick whose rings.
      const ring = isHead ? el("select", { "aria-label": "Ring the handset of" },
        managers.map((m) => el("option", { value: m.extension, selected: m.extension === card.responsible_manager },
                               managerLabel(m.extension, m.name)))) : null;
      button.addEventListener("click", () => callNow(n, button, ring));
      return el("li", {}, el("span", { class: "number" }, n), ring, button);
    }));
    clear(root,
      el("p", { class: "crumbs" }, el("a", { href: "/clients" }, "Clients"), " / ", card.name || card.numbers[0] || "card"),
      el("div", { class: "card-head" },
        el("h1", {}, card.name || card.numbers[0] || "Unnamed client"),
        badge(card.is_lead ? "lead" : "client", card.is_lead ? "lead" : "client")),
      el("div", { class: "client-layout" },
        el("div", {},
          el("section", { class: "card" }, el("h2", {}, "Numbers"), numbers,
            el("p", { class: "muted small" }, `First contact ${fmtTime(card.created_at)} · responsible: ${
              managerLabel(card.responsible_manager, card.responsible_manager_name)}`)),
          form),
        el("section", { class: "card" }, el("h2", {}, `Calls (${card.calls.length})`),
          card.calls.length ? el("ol", { class: "timeline" }, card.calls.map(timelineItem))
            : el("p", { class: "muted" }, "No calls you may see."))));
  }
  load();
})();
