/* A client's card: numbers, manager, the notes' history, click-to-call, merging a second card of the
   same person (the head), and every call with its recording. */
"use strict";

(() => {
  const { t, tn, api, el, clear, fmtTime, fmtDuration, fmtClock, badge, direction, managerLabel, notice } = PBX;
  const root = document.getElementById("client-page");
  const clientId = Number(document.body.dataset.clientId);
  const isHead = PBX.role === "head";
  // The card as last read or saved; every part of the page is drawn from it.
  let card = null;
  let managers = [];

  function cardTitle(c) {
    return c.name || (c.phones[0] && c.phones[0].display) || t("Unnamed client");
  }

  function phonesOf(c) {
    // "phones" carries each number as people write it; "numbers" alone is what older servers sent.
    return c.phones || c.numbers.map((n) => ({ number: n, display: n }));
  }

  function managerName(extension) {
    const found = managers.find((m) => m.extension === extension);
    return managerLabel(extension, found ? found.name : null);
  }

  /* The player reports the start of listening once per page; streaming the audio is not listening. */
  function reportListening(audio, recordingId) {
    let reported = false;
    audio.addEventListener("playing", () => {
      if (reported) return;
      reported = true;
      api(`/api/recordings/${recordingId}/listen`, { method: "POST" }).catch(() => { reported = false; });
    });
  }

  async function placeCall(number, extension, button) {
    button.disabled = true;
    try {
      const body = { client_id: clientId, number };
      if (extension) body.extension = extension;
      const res = await api("/api/calls/originate", { method: "POST", json: body });
      const client = phonesOf(card).find((p) => p.number === res.number);
      const shown = client ? client.display : res.number;
      notice(PBX.extension && PBX.extension === res.extension
        ? t("Your handset is ringing; {number} is dialled when you pick up.", { number: shown })
        : t("The handset of {manager} is ringing; {number} is dialled when it is picked up.",
          { manager: managerName(res.extension), number: shown }), "ok");
    } catch (err) {
      notice(t("Could not place the call: {reason}", { reason: err.message }), "error");
    } finally {
      // A second click while the handset rings would ring it twice.
      setTimeout(() => { button.disabled = false; }, 3000);
    }
  }

  /* The head has no handset of their own: they choose whose rings, the client's own manager first. */
  function askWhoRings(phone, button) {
    const old = document.getElementById("ring-dialog");
    if (old) old.remove();
    const choice = el("select", { name: "ring_extension", id: "ring-extension" },
      el("option", { value: "", disabled: true, selected: !card.responsible_manager }, t("Choose a manager…")),
      managers.map((m) => el("option", { value: m.extension, selected: m.extension === card.responsible_manager },
        managerLabel(m.extension, m.name))));
    const ring = el("button", { type: "submit", class: "primary", id: "ring-confirm", disabled: !choice.value },
      t("Ring"));
    choice.addEventListener("change", () => { ring.disabled = !choice.value; });
    const form = el("form", { method: "dialog", class: "ring-form" },
      el("h2", {}, t("Call {number}", { number: phone.display })),
      el("label", {}, t("Whose handset should ring first?"), choice),
      el("p", { class: "muted small" }, t("The manager picks up, then the client is dialled.")),
      el("div", { class: "ring-actions" },
        el("button", { type: "button", class: "cancel", onclick: () => dialog.close() }, t("Cancel")), ring));
    const dialog = el("dialog", { id: "ring-dialog", "aria-label": t("Whose handset should ring?") }, form);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!choice.value) return;
      dialog.close();
      placeCall(phone.number, choice.value, button);
    });
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
    choice.focus();
  }

  function numbersList() {
    const phones = phonesOf(card);
    if (!phones.length) return el("p", { class: "muted" }, t("No numbers on this card."));
    return el("ul", { class: "numbers" }, phones.map((phone) => {
      const button = el("button", { type: "button", class: "primary call-button", dataset: { number: phone.number },
                                    "aria-label": t("Call {number}", { number: phone.display }) }, t("Dial"));
      button.addEventListener("click", () => (isHead ? askWhoRings(phone, button) : placeCall(phone.number, null, button)));
      return el("li", {},
        el("a", { class: "number", href: "tel:" + phone.number }, phone.display), button);
    }));
  }

  function summary() {
    return el("p", { class: "muted small", id: "card-summary" },
      t("First contact {date}", { date: (PBX.fmtDate || fmtTime)(card.created_at) }), " · ",
      card.responsible_manager
        ? t("Responsible: {manager}", {
          manager: managerLabel(card.responsible_manager, card.responsible_manager_name),
        })
        : t("No responsible manager"));
  }

  function heading() {
    return el("div", { class: "card-head", id: "card-head" },
      el("h1", {}, cardTitle(card)),
      badge(card.is_lead ? "lead" : "client", card.is_lead ? t("Lead") : t("Client")));
  }

  function editForm() {
    const name = el("input", { name: "name", value: card.name || "", placeholder: t("Client's name"),
                               maxlength: 200, autocomplete: "off" });
    const lead = el("select", { name: "is_lead" },
      el("option", { value: "true", selected: card.is_lead }, t("Lead")),
      el("option", { value: "false", selected: !card.is_lead }, t("Client")));
    const responsible = el("select", { name: "responsible_manager", disabled: !isHead },
      el("option", { value: "" }, t("Nobody")),
      managers.map((m) => el("option", { value: m.extension, selected: m.extension === card.responsible_manager },
        managerLabel(m.extension, m.name))));
    const save = el("button", { type: "submit", class: "primary" }, t("Save"));
    const form = el("form", { class: "card edit", id: "card-form" },
      el("label", {}, t("Name"), name),
      el("label", {}, t("Stage"), lead),
      el("label", {}, t("Responsible manager"), responsible),
      el("div", { class: "wide" }, save));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { name: name.value, is_lead: lead.value === "true" };
      if (isHead) body.responsible_manager = responsible.value || null;
      save.disabled = true;
      try {
        const saved = await api(`/api/clients/${clientId}`, { method: "PATCH", json: body });
        // The card as the server now holds it, without a reload; what was typed stays if saving failed.
        card = { ...card, ...saved };
        name.value = card.name || "";
        redrawCard();
        notice(t("Saved."), "ok");
      } catch (err) {
        notice(t("Not saved: {reason}", { reason: err.message }), "error");
      } finally {
        save.disabled = false;
      }
    });
    return form;
  }

  function timelineItem(call) {
    const transcriptBox = el("div", { class: "mini-transcript" });
    const toggle = call.has_transcript ? el("button", { type: "button", class: "link", "aria-expanded": "false",
      onclick: async (event) => {
        const button = event.currentTarget;
        if (transcriptBox.childElementCount) {
          clear(transcriptBox);
          button.setAttribute("aria-expanded", "false");
          return;
        }
        try {
          const full = await api(`/api/calls/${call.id}`);
          button.setAttribute("aria-expanded", "true");
          clear(transcriptBox, full.transcript.map((s) => el("p", {},
            el("a", { href: `/calls/${call.id}?t=${s.start}&rec=${s.recording_id || ""}`, class: "time" },
              fmtClock(s.start)),
            s.speaker ? el("span", { class: "speaker speaker-" + s.speaker },
              s.speaker === "client" ? t("client") : s.speaker === "manager" ? t("manager") : s.speaker) : null,
            " ", s.text)));
        } catch (err) {
          notice(err.message, "error");
        }
      } }, t("Transcript")) : null;
    const recording = call.playable[0];
    let audio = null;
    if (recording) {
      // preload="none": nothing is fetched until the manager presses play.
      audio = el("audio", { controls: true, preload: "none", src: recording.audio_url,
                            "aria-label": t("Recording of the call") });
      reportListening(audio, recording.id);
    }
    return el("li", { class: "timeline-item status-" + call.status },
      el("div", { class: "when" }, el("a", { href: `/calls/${call.id}` }, fmtTime(call.started_at))),
      el("div", { class: "what" },
        el("div", { class: "call-line" },
          direction(call.direction), " ", badge(call.status), " ",
          el("span", { class: "call-manager" }, managerLabel(call.manager, call.manager_name))),
        el("div", { class: "muted small" },
          t("wait {wait} · talk {talk}", { wait: fmtDuration(call.wait_s), talk: fmtDuration(call.talk_s) })),
        audio,
        el("div", { class: "links" },
          recording ? el("a", { href: `/calls/${call.id}` }, t("Open the player")) : null,
          recording ? el("a", { href: recording.audio_url + "?download=1", download: "" }, t("Download")) : null,
          toggle),
        transcriptBox));
  }


  /* Notes are a history: each with who wrote it and when, newest first; nothing is overwritten. */
  function noteItem(note) {
    return el("li", { class: "note", dataset: { id: note.id } },
      el("p", { class: "note-text" }, note.text),
      el("p", { class: "muted small note-by" },
        note.author ? t("{author}, {time}", { author: note.author, time: fmtTime(note.created_at) })
          : t("Written before notes were signed, kept since {time}", { time: fmtTime(note.created_at) })));
  }

  function notesSection() {
    const history = card.note_history || [];
    const list = history.length ? el("ol", { class: "notes", id: "notes" }, history.map(noteItem))
      : el("p", { class: "muted", id: "notes" }, t("No notes yet."));
    const text = el("textarea", { name: "note", id: "note-text", rows: 3, maxlength: 20000,
                                  placeholder: t("A note about this client…") });
    const add = el("button", { type: "submit", class: "primary", id: "note-add" }, t("Add the note"));
    const form = el("form", { class: "note-form", id: "note-form" },
      el("label", { for: "note-text" }, t("New note")), text, el("div", {}, add));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!text.value.trim()) {
        notice(t("Write the note first."), "error");
        return;
      }
      add.disabled = true;
      try {
        const note = await api(`/api/clients/${clientId}/notes`, { method: "POST", json: { text: text.value } });
        card.note_history = [note, ...(card.note_history || [])];
        card.notes = note.text;
        text.value = "";
        clear(notesBox, notesSection());
        notice(t("Note added."), "ok");
      } catch (err) {
        // What was typed stays in the box.
        notice(t("Not saved: {reason}", { reason: err.message }), "error");
      } finally {
        add.disabled = false;
      }
    });
    return el("section", { class: "card notes-card" },
      el("h2", {}, tn("{n} note", "{n} notes", history.length)), form, list);
  }

  /* The head merges a second card of the same person into this one: found by name or number. */
  function mergeSection() {
    const query = el("input", { type: "search", id: "merge-search", name: "merge_q", autocomplete: "off",
                                placeholder: t("Name or number of the other card") });
    const results = el("ul", { class: "merge-results", id: "merge-results" });
    let timer = null;
    const search = async () => {
      const q = query.value.trim();
      if (q.length < 2) {
        clear(results);
        return;
      }
      try {
        const found = await api(`/api/clients?q=${encodeURIComponent(q)}&per_page=10`);
        const others = found.items.filter((c) => c.id !== clientId);
        clear(results, others.length ? others.map((other) => el("li", {},
          el("a", { href: `/clients/${other.id}` }, cardTitle(other)),
          el("span", { class: "muted small" }, phonesOf(other).map((p) => p.display).join(", ")),
          el("button", { type: "button", class: "merge-pick", dataset: { id: other.id },
                         onclick: () => confirmMerge(other) }, t("Merge into this card"))))
          : el("li", { class: "muted" }, t("No other card found.")));
      } catch (err) {
        notice(err.message, "error");
      }
    };
    query.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(search, 250);
    });
    return el("details", { class: "card merge", id: "merge" },
      el("summary", {}, t("Merge with another card of this person")),
      el("p", { class: "muted small" },
        t("The other card's numbers, calls and notes move to this card, and the other card is deleted.")),
      el("label", { for: "merge-search" }, t("Find the other card")), query, results);
  }

  function confirmMerge(other) {
    const old = document.getElementById("merge-dialog");
    if (old) old.remove();
    const go = el("button", { type: "submit", class: "primary danger", id: "merge-confirm" }, t("Merge"));
    const form = el("form", { method: "dialog", class: "ring-form" },
      el("h2", {}, t("Merge the cards?")),
      el("p", {}, t("«{other}» ({numbers}) will be merged into «{card}»: its numbers, calls and notes move here and it is deleted.",
        { other: cardTitle(other), numbers: phonesOf(other).map((p) => p.display).join(", "), card: cardTitle(card) })),
      el("div", { class: "ring-actions" },
        el("button", { type: "button", class: "cancel", onclick: () => dialog.close() }, t("Cancel")), go));
    const dialog = el("dialog", { id: "merge-dialog", class: "card-dialog", "aria-label": t("Merge the cards?") }, form);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      go.disabled = true;
      try {
        card = await api(`/api/clients/${clientId}/merge`, { method: "POST", json: { client_id: other.id } });
        dialog.close();
        render();
        notice(t("Cards merged."), "ok");
      } catch (err) {
        go.disabled = false;
        notice(t("Not merged: {reason}", { reason: err.message }), "error");
      }
    });
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
    go.focus();
  }

  let headBox, numbersBox, summaryBox, notesBox;

  /* The parts the saved card changes: heading, crumbs, numbers and who is responsible. */
  function redrawCard() {
    document.title = `${cardTitle(card)} · pbxbridge`;
    clear(headBox, heading());
    clear(numbersBox, numbersList());
    clear(summaryBox, summary());
    const crumb = document.getElementById("crumb-name");
    if (crumb) crumb.textContent = cardTitle(card);
  }

  async function load() {
    try {
      [card, managers] = await Promise.all([
        api(`/api/clients/${clientId}`), api("/api/managers").then((d) => d.items),
      ]);
    } catch (err) {
      clear(root, el("p", { class: "error" }, err.message));
      return;
    }
    render();
  }

  /* The whole page from the card (after a merge the calls and notes change too). */
  function render() {
    headBox = el("div");
    numbersBox = el("div");
    summaryBox = el("div");
    notesBox = el("div", {}, notesSection());
    redrawCard();
    clear(root,
      el("p", { class: "crumbs" }, el("a", { href: "/clients" }, t("Clients")), " / ",
        el("span", { id: "crumb-name" }, cardTitle(card))),
      headBox,
      el("div", { class: "client-layout" },
        el("div", {},
          el("section", { class: "card" }, el("h2", {}, t("Numbers")), numbersBox, summaryBox),
          editForm(), notesBox, isHead ? mergeSection() : null),
        el("section", { class: "card calls" },
          el("h2", {}, tn("{n} call", "{n} calls", card.calls.length)),
          card.calls.length ? el("ol", { class: "timeline" }, card.calls.map(timelineItem))
            : el("p", { class: "muted" }, t("No calls you may see.")))));
  }
  load();
})();
