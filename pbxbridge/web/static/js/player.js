/* One call: waveform player (wavesurfer.js), skips, speed, keys, a transcript that follows
   the audio and seeks on click, and the call's review: the head's comments at moments of the
   recording (a click on the waveform picks the moment), tags, the checklist's score, reviewed. */
"use strict";

(() => {
  const { t, tn, api, el, clear, fmtTime, fmtDuration, fmtClock, fmtPercent, badge, direction, managerLabel, notice } = PBX;
  const root = document.getElementById("call-page");
  const callId = document.body.dataset.callId;
  const params = new URLSearchParams(location.search);
  const startAt = Number(params.get("t") || 0);
  const SPEEDS = [0.75, 1, 1.25, 1.5, 2];
  const SKIP_S = 10;     // the −10 s / +10 s buttons
  const ARROW_S = 5;     // ← and →
  const SPEED_KEY = "pbxbridge.playbackRate";
  const isHead = PBX.role === "head";
  // A comment stays in view above the waveform this long after its moment while the audio plays.
  const COMMENT_SHOWN_S = 6;
  let wave = null;
  // Where the review puts its part of the player: the comment of the moment and the head's form.
  const commentSlot = el("div", { class: "comment-slot" });

  // Whose side an unanswered call out stopped on (the journal's failure_reason).
  function failureReason(reason) {
    switch (reason) {
      case "manager_no_answer": return t("the manager did not pick up");
      case "manager_rejected": return t("the manager's handset refused the call");
      case "client_busy": return t("the client was busy");
      case "client_no_answer": return t("the client did not answer");
      case "not_placed": return t("the call could not be placed");
      default: return reason;
    }
  }

  function speakerLabel(speaker) {
    if (speaker === "client") return t("client");
    if (speaker === "manager") return t("manager");
    return speaker;
  }

  // Extension -> name, for the handsets that rang.
  let managerNames = {};

  function extensions(list) {
    return (list || []).map((ext) => managerLabel(ext, managerNames[ext])).join(", ") || "—";
  }

  function transfers(call) {
    // Each party the call went to: a manager by name and extension, an outside number as people write it.
    const list = call.transfers || (call.transferred_to || []).map((to) => ({ to, name: null, display: to }));
    return list.map((p) => (p.name ? managerLabel(p.to, p.name) : p.display || p.to)).join(", ");
  }

  function facts(call) {
    const number = call.client_number_display || call.client_number;
    const moved = transfers(call);
    const rows = [
      [t("Started"), fmtTime(call.started_at)],
      [t("Direction"), direction(call.direction)],
      [t("Status"), badge(call.status)],
      [t("Client"), call.client_id ? el("a", { href: `/clients/${call.client_id}` },
        (call.client && call.client.name) || number || t("card")) : (number || "—")],
      [t("Number"), number || "—"],
      [t("Manager"), managerLabel(call.manager, call.manager_name)],
      moved ? [t("Transferred to"), moved] : null,
      call.failure_reason ? [t("Why"), failureReason(call.failure_reason)] : null,
      call.voicemail ? [t("Voicemail"), call.voicemail_message ? t("message left") : t("reached, no message found")]
        : null,
      [t("Rang"), extensions(call.rang)],
      [t("Queues"), extensions(call.queues)],
      [t("Wait"), fmtDuration(call.wait_s)],
      [t("Talk"), fmtDuration(call.talk_s)],
      call.did ? [t("DID"), call.did] : null,
    ].filter(Boolean);
    return el("dl", { class: "facts" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  function seek(audio, seconds, play) {
    const end = Number.isFinite(audio.duration) ? audio.duration : Infinity;
    const to = Math.min(Math.max(0, seconds), end);
    if (wave) wave.setTime(to); else audio.currentTime = to;
    if (play) audio.play().catch(() => {});
  }

  function transcriptView(segments, audio) {
    if (!segments.length) return el("p", { class: "muted" }, t("No transcript yet."));
    const items = segments.map((seg, i) => {
      const words = (seg.words && seg.words.length ? seg.words : [{ start: seg.start, end: seg.end, word: seg.text }])
        .map((w) => el("span", { class: "word", dataset: { start: w.start, end: w.end } }, w.word, " "));
      const line = el("div", { class: "segment", dataset: { start: seg.start, end: seg.end, index: i } },
        el("button", { class: "time link", type: "button",
                       "aria-label": t("Play from {time}", { time: fmtClock(seg.start) }) }, fmtClock(seg.start)),
        seg.speaker ? el("span", { class: "speaker speaker-" + seg.speaker }, speakerLabel(seg.speaker)) : null,
        el("p", { class: "text" }, words));
      // A click on a word plays from that word; anywhere else on the line, from the line's start.
      line.addEventListener("click", (event) => {
        const word = event.target.closest(".word");
        seek(audio, Number(word ? word.dataset.start : seg.start), true);
      });
      return line;
    });
    return el("div", { class: "transcript", id: "transcript", "aria-label": t("Transcript") }, items);
  }

  /* The line being spoken: the last one begun, while it lasts (and a moment after, between lines). */
  function spokenLine(lines, time) {
    let found = null;
    for (const line of lines) {
      if (Number(line.dataset.start) <= time + 0.01) found = line; else break;
    }
    return found && time < Number(found.dataset.end) + 1 ? found : null;
  }

  /* Scroll the transcript box (not the page) so the line is in view, a third from its top. */
  function keepInView(box, line) {
    const top = line.offsetTop - box.offsetTop;
    if (top < box.scrollTop || top + line.offsetHeight > box.scrollTop + box.clientHeight) {
      box.scrollTo({ top: Math.max(0, top - box.clientHeight / 3), behavior: "smooth" });
    }
  }

  function follow(audio, box) {
    const lines = Array.from(box.querySelectorAll(".segment"));
    let current = null;
    const update = () => {
      const time = audio.currentTime;
      const found = spokenLine(lines, time);
      if (found !== current) {
        if (current) current.classList.remove("current");
        if (found) {
          found.classList.add("current");
          keepInView(box, found);
        }
        current = found;
      }
      for (const w of box.querySelectorAll(".word.current")) w.classList.remove("current");
      if (found) {
        for (const w of found.querySelectorAll(".word")) {
          if (time >= Number(w.dataset.start) && time < Number(w.dataset.end)) w.classList.add("current");
        }
      }
    };
    audio.addEventListener("timeupdate", update);
    audio.addEventListener("seeked", update);
  }

  function savedSpeed() {
    try {
      const rate = Number(localStorage.getItem(SPEED_KEY));
      return SPEEDS.includes(rate) ? rate : 1;
    } catch (err) {
      return 1;  // storage refused (private mode): every page starts at 1×
    }
  }

  /* Space plays and pauses, ← and → step back and forward; never while typing. */
  function keyboard(audio, play) {
    const typing = (target) => target instanceof Element
      && (target.isContentEditable || target.closest("input, textarea, select, [contenteditable]"));
    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.altKey || event.metaKey || typing(event.target)) return;
      if (event.key === " " || event.code === "Space") {
        event.preventDefault();  // no page scroll, no click on a focused button
        if (!event.repeat) play();
      } else if (event.key === "ArrowLeft") {
        event.preventDefault();
        seek(audio, audio.currentTime - ARROW_S);
      } else if (event.key === "ArrowRight") {
        event.preventDefault();
        seek(audio, audio.currentTime + ARROW_S);
      }
    });
    // A focused button is clicked when space is let go: that would toggle a second time.
    document.addEventListener("keyup", (event) => {
      if ((event.key === " " || event.code === "Space") && !typing(event.target)) event.preventDefault();
    });
  }

  /* The audit log's "listened": written once the audio actually plays, not when the page loads it. */
  function reportListening(audio, recordingId) {
    let reported = false;
    audio.addEventListener("playing", () => {
      if (reported) return;
      reported = true;
      api(`/api/recordings/${recordingId}/listen`, { method: "POST" }).catch(() => { reported = false; });
    });
  }

  function player(call, recording, segments) {
    // The whole file, read once (a call's recording is small): seeking then plays at once. Loading it
    // is not listening; the audit log hears of it when playback starts (reportListening).
    const audio = el("audio", { id: "audio", preload: "auto", src: recording.audio_url });
    const waveBox = el("div", { id: "waveform", class: "waveform" });
    playerAudio = audio;
    playerWaveBox = waveBox;
    const time = el("span", { class: "clock", id: "clock", "aria-live": "off" }, "0:00");
    const play = el("button", { class: "primary play", id: "play", type: "button" }, "▶ " + t("Play"));
    const toggle = () => (audio.paused ? audio.play().catch(() => {}) : audio.pause());
    play.addEventListener("click", toggle);
    const back = el("button", { type: "button", id: "back10", class: "skip",
                                "aria-label": t("Back {seconds} s", { seconds: SKIP_S }),
                                onclick: () => seek(audio, audio.currentTime - SKIP_S) },
      t("−{seconds} s", { seconds: SKIP_S }));
    const ahead = el("button", { type: "button", id: "ahead10", class: "skip",
                                 "aria-label": t("Forward {seconds} s", { seconds: SKIP_S }),
                                 onclick: () => seek(audio, audio.currentTime + SKIP_S) },
      t("+{seconds} s", { seconds: SKIP_S }));
    const speeds = el("div", { class: "speeds", role: "group", "aria-label": t("Speed") });
    const setSpeed = (rate) => {
      audio.defaultPlaybackRate = rate;
      audio.playbackRate = rate;
      if (wave) wave.setPlaybackRate(rate, true);
      for (const b of speeds.children) {
        const on = Number(b.dataset.rate) === rate;
        b.classList.toggle("active", on);
        b.setAttribute("aria-pressed", on ? "true" : "false");
      }
    };
    clear(speeds, SPEEDS.map((rate) => el("button", {
      type: "button", dataset: { rate },
      onclick: () => {
        setSpeed(rate);
        try { localStorage.setItem(SPEED_KEY, String(rate)); } catch (err) { /* not remembered, still set */ }
      },
    }, `${PBX.fmtNumber ? PBX.fmtNumber(rate) : rate}×`)));
    audio.addEventListener("play", () => { play.textContent = "❚❚ " + t("Pause"); });
    audio.addEventListener("pause", () => { play.textContent = "▶ " + t("Play"); });
    const showTime = () => {
      time.textContent = `${fmtClock(audio.currentTime)} / ${
        fmtClock(Number.isFinite(audio.duration) ? audio.duration : recording.duration_s)}`;
    };
    audio.addEventListener("timeupdate", showTime);
    audio.addEventListener("loadedmetadata", () => {
      // A media element forgets its rate when it loads: set it again.
      setSpeed(savedSpeed());
      if (startAt > 0) audio.currentTime = startAt;
      showTime();
    }, { once: true });
    reportListening(audio, recording.id);
    keyboard(audio, toggle);
    if (window.WaveSurfer) {
      wave = WaveSurfer.create({
        container: waveBox, media: audio, height: 96, waveColor: "#b8c7e8", progressColor: "#2457c5",
        cursorColor: "#0f2a66", barWidth: 2, barGap: 1, barRadius: 2, normalize: true,
      });
      wave.on("ready", () => { if (startAt > 0 && audio.currentTime < startAt - 0.5) wave.setTime(startAt); });
    } else {
      audio.controls = true;
      waveBox.append(audio);
    }
    setSpeed(savedSpeed());
    const view = transcriptView(segments, audio);
    if (segments.length) follow(audio, view);
    return el("section", { class: "player card" },
      el("div", { class: "controls" },
        el("div", { class: "transport" }, back, play, ahead),
        speeds, time,
        el("a", { class: "button download", id: "download", href: recording.audio_url + "?download=1", download: "" },
          t("Download"))),
      waveBox, audio.parentNode ? null : audio, commentSlot,
      el("p", { class: "muted small keys-hint" }, t("Keys: space plays and pauses, ← and → step {seconds} s.",
        { seconds: ARROW_S })),
      el("div", { class: "talk" },
        el("div", { class: "talk-transcript" }, el("h2", {}, t("Transcript")), view),
        scriptBox));
  }

  /* ---------- The script: checklist results and the conversation's figures ---------- */

  // Filled once the checks are read; the player puts it beside its transcript (below it on a phone).
  const scriptBox = el("section", { class: "script", id: "script", "aria-labelledby": "script-title" });

  function sideName(side) {
    if (side === "manager") return t("the manager");
    if (side === "client") return t("the client");
    return t("either side");
  }

  /* An item's moment: on this recording the audio plays from it; on another one its page opens there. */
  function playEvidence(evidence, recording) {
    if (recording && evidence.recording_id && evidence.recording_id !== recording.id) {
      location.href = `?rec=${evidence.recording_id}&t=${Math.floor(evidence.at_s)}`;
    } else if (playerAudio) {
      seek(playerAudio, Number(evidence.at_s), true);
    }
  }

  function checkItem(item, recording) {
    const evidence = item.evidence && item.evidence.at_s !== undefined && item.evidence.at_s !== null
      ? item.evidence : null;
    const stop = !item.must;
    const state = item.passed ? t("Passed") : t("Failed");
    const lines = [
      el("span", { class: "item-title" }, item.title),
      stop ? el("span", { class: "badge badge-stop" }, t("Stop phrase")) : null,
      el("span", { class: "muted small item-side" }, t("Said by: {side}", { side: sideName(item.side) })),
      evidence ? el("span", { class: "item-words" },
        el("span", { class: "time" }, fmtClock(evidence.at_s)), " ",
        t("“{words}”", { words: evidence.words || "" }),
        evidence.side ? el("span", { class: "muted small" }, " ", t("({side})", { side: sideName(evidence.side) }))
          : null) : null,
      !item.passed && item.reason_text ? el("span", { class: "item-reason" }, item.reason_text) : null,
      item.side_note ? el("span", { class: "muted small item-note" }, item.side_note) : null,
    ];
    const mark = el("span", { class: "mark", role: "img", "aria-label": state }, item.passed ? "✓" : "✗");
    const classes = `script-item ${item.passed ? "passed" : "failed"}${stop ? " stop" : ""}`;
    if (!evidence) return el("li", { class: classes }, el("div", { class: "item-row" }, mark, el("div", { class: "item-body" }, lines)));
    return el("li", { class: classes, dataset: { at: evidence.at_s } },
      el("button", { type: "button", class: "item-row",
                     "aria-label": t("{item}: {state}, play from {time}",
                       { item: item.title, state, time: fmtClock(evidence.at_s) }),
                     onclick: () => playEvidence(evidence, recording) },
        mark, el("div", { class: "item-body" }, lines)));
  }

  function checklistView(entry, recording) {
    return el("div", { class: "script-checklist", dataset: { checklist: entry.checklist } },
      el("h3", {}, entry.checklist, " ",
        el("span", { class: "muted small" },
          t("{passed} of {total} passed", { passed: entry.items_passed, total: entry.items_total })),
        entry.stop_phrases ? el("span", { class: "badge badge-stop" },
          tn("{n} stop phrase said", "{n} stop phrases said", entry.stop_phrases)) : null),
      el("ul", { class: "script-items" }, entry.items.map((item) => checkItem(item, recording))));
  }

  function figuresView(f) {
    const rows = [
      [t("Manager talks"), fmtPercent(f.manager_share)],
      [t("Client talks"), fmtPercent(f.client_share)],
      [t("Longest monologue of the manager"), fmtDuration(f.longest_monologue_s)],
      [t("Interruptions"), t("{total}: the manager {manager}, the client {client}",
        { total: f.interruptions, manager: f.manager_interruptions, client: f.client_interruptions })],
      [t("Silence"), fmtPercent(f.silence_share)],
      [t("Words per minute"), t("the manager {manager}, the client {client}",
        { manager: PBX.fmtNumber(f.manager_wpm, 0), client: PBX.fmtNumber(f.client_wpm, 0) })],
    ];
    return el("dl", { class: "facts script-figures", id: "script-figures" },
      rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  async function loadScript(recording, segments) {
    const title = el("h2", { id: "script-title" }, t("Script"));
    let found;
    try {
      found = await api(`/api/calls/${callId}/checks`);
    } catch (err) {
      clear(scriptBox, title, el("p", { class: "error" }, err.message));
      return;
    }
    const parts = [title];
    if (!segments.length) {
      parts.push(el("p", { class: "muted", id: "script-none" },
        t("No transcript yet: the script is checked once the call is transcribed.")));
    } else if (!found.checklists.length) {
      parts.push(el("p", { class: "muted", id: "script-none" },
        t("Not checked yet: no checklist applies to this call, or the check has not reached it.")));
    }
    for (const entry of found.checklists) parts.push(checklistView(entry, recording));
    if (segments.length) {
      parts.push(el("h3", {}, t("Conversation")));
      parts.push(found.conversation ? figuresView(found.conversation)
        : el("p", { class: "muted small", id: "script-one-channel" },
          t("No conversation figures: the recording has one channel, so the manager's and the client's speech cannot be told apart.")));
    }
    clear(scriptBox, parts);
  }

  /* ---------- The call's review ---------- */

  let playerAudio = null;     // the player's audio element, once drawn
  let playerWaveBox = null;   // the waveform's box, where the comments' marks go

  function reviewOfCall(reviewBox, recording) {
    let review = null;
    let setup = { tags: [], checklist: [] };
    const comments = () => review.comments.filter((c) => !recording || !c.recording_id || c.recording_id === recording.id);
    const duration = () => {
      const d = playerAudio && Number.isFinite(playerAudio.duration) ? playerAudio.duration : 0;
      return d || (recording && recording.duration_s) || 0;
    };

    function seekTo(seconds) {
      if (playerAudio) seek(playerAudio, seconds, true);
    }

    /* Marks on the waveform, one per comment; a click plays from that moment. */
    const marks = el("div", { class: "comment-marks", id: "comment-marks" });
    function drawMarks() {
      const total = duration();
      clear(marks, total ? comments().map((c) => el("button", {
        type: "button", class: "comment-mark", style: `left: ${Math.min(100, (100 * c.at_s) / total)}%`,
        dataset: { at: c.at_s }, title: c.text,
        "aria-label": t("Comment at {time}: {text}", { time: fmtClock(c.at_s), text: c.text }),
        onclick: (event) => { event.stopPropagation(); seekTo(c.at_s); },
      })) : []);
    }

    /* The comment of the moment: shown above the waveform while the audio passes it. */
    const now = el("div", { class: "comment-now", id: "comment-now", "aria-live": "polite", hidden: true });
    let shown = null;
    function showNow() {
      if (!playerAudio) return;
      const time = playerAudio.currentTime;
      let found = null;
      for (const c of comments()) {
        if (c.at_s <= time + 0.05 && time < c.at_s + COMMENT_SHOWN_S) found = c;
      }
      for (const item of reviewBox.querySelectorAll(".review-comment")) {
        item.classList.toggle("current", !!found && Number(item.dataset.id) === found.id);
      }
      if (found === shown) return;
      shown = found;
      now.hidden = !found;
      clear(now, found ? [
        el("span", { class: "time" }, fmtClock(found.at_s)), " ",
        el("span", { class: "author" }, found.author), ": ",
        el("span", { class: "text" }, found.text),
      ] : []);
    }

    /* The head's comment at a moment: the waveform's click (or the current moment) picks it. */
    let commentAt = 0;
    const atLabel = el("span", { id: "comment-at" });
    const text = el("textarea", { id: "comment-text", name: "comment", rows: 2, maxlength: 2000,
                                  placeholder: t("What should the manager hear here?") });
    const form = el("form", { class: "comment-form", id: "comment-form", hidden: true },
      el("label", { for: "comment-text" }, atLabel), text,
      el("div", { class: "comment-actions" },
        el("button", { type: "button", class: "cancel", onclick: () => { form.hidden = true; } }, t("Cancel")),
        el("button", { type: "submit", class: "primary", id: "comment-save" }, t("Add the comment"))));
    function commentHere(seconds) {
      commentAt = Math.max(0, seconds);
      atLabel.textContent = t("Comment at {time}", { time: fmtClock(commentAt) });
      form.hidden = false;
      text.focus({ preventScroll: true });
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!text.value.trim()) {
        notice(t("Write the comment first."), "error");
        return;
      }
      const save = form.querySelector("#comment-save");
      save.disabled = true;
      try {
        const added = await api(`/api/calls/${callId}/review/comments`, { method: "POST", json: {
          at_s: Math.round(commentAt * 100) / 100, text: text.value, recording_id: recording ? recording.id : undefined,
        } });
        review.comments = [...review.comments, added].sort((a, b) => a.at_s - b.at_s || a.id - b.id);
        text.value = "";
        form.hidden = true;
        draw();
        notice(t("Comment saved."), "ok");
      } catch (err) {
        notice(t("Not saved: {reason}", { reason: err.message }), "error");
      } finally {
        save.disabled = false;
      }
    });

    async function removeComment(comment) {
      try {
        await api(`/api/calls/${callId}/review/comments/${comment.id}`, { method: "DELETE" });
        review.comments = review.comments.filter((c) => c.id !== comment.id);
        draw();
      } catch (err) {
        notice(err.message, "error");
      }
    }

    function commentList() {
      const list = comments();
      if (!list.length) {
        return el("p", { class: "muted", id: "review-comments" },
          isHead && recording ? t("No comments yet. Click the waveform at a moment to comment on it.")
            : t("No comments yet."));
      }
      return el("ol", { class: "review-comments", id: "review-comments" }, list.map((c) => el("li", {
        class: "review-comment", dataset: { id: c.id, at: c.at_s } },
        el("button", { type: "button", class: "time link",
                       "aria-label": t("Play from {time}", { time: fmtClock(c.at_s) }), onclick: () => seekTo(c.at_s) },
          fmtClock(c.at_s)),
        el("div", { class: "comment-body" },
          el("p", { class: "text" }, c.text),
          el("p", { class: "muted small" }, `${c.author} · ${fmtTime(c.created_at)}`)),
        isHead ? el("button", { type: "button", class: "link danger",
                                "aria-label": t("Delete the comment at {time}", { time: fmtClock(c.at_s) }),
                                onclick: () => removeComment(c) }, t("Delete")) : null)));
    }

    function status() {
      return el("p", { class: "review-status", id: "review-status" },
        review.reviewed
          ? badge("reviewed", t("Reviewed"))
          : badge("not-reviewed", t("Not reviewed yet")), " ",
        review.reviewed && review.reviewer
          ? el("span", { class: "muted small" },
            t("by {name}, {time}", { name: review.reviewer, time: fmtTime(review.updated_at) })) : null,
        " ",
        el("strong", { id: "review-score" }, review.score === null ? t("No score yet")
          : t("Score: {score}", { score: fmtPercent(review.score / 100) })));
    }

    /* What a manager sees: the head's verdict, read only. */
    function verdict() {
      return [
        review.tags.length ? el("ul", { class: "review-tags", id: "review-tags" },
          review.tags.map((tag) => el("li", {}, tag))) : null,
        review.checks.length ? el("ul", { class: "review-checks", id: "review-checks" },
          review.checks.map((c) => el("li", { class: c.met ? "met" : "missed" },
            el("span", { class: "mark", role: "img", "aria-label": c.met ? t("Met") : t("Not met") },
              c.met ? "✓" : "✗"), " ", c.text))) : null,
      ];
    }

    /* The head's form: reviewed, tags from the shared list, the checklist's lines met or not. */
    function markForm() {
      const metNow = Object.fromEntries(review.checks.map((c) => [c.id, c.met]));
      const reviewed = el("input", { type: "checkbox", name: "reviewed", id: "review-done", checked: review.reviewed });
      const tagBoxes = setup.tags.map((tag) => el("label", { class: "chip" },
        el("input", { type: "checkbox", name: "tag", value: tag, checked: review.tags.includes(tag) }), tag));
      const lineBoxes = setup.checklist.map((line) => el("label", { class: "check-line" },
        el("input", { type: "checkbox", name: "check", value: line.id, checked: !!metNow[line.id] }), line.text));
      const save = el("button", { type: "submit", class: "primary", id: "review-save" }, t("Save the review"));
      const markForm = el("form", { class: "review-form", id: "review-form" },
        el("fieldset", {}, el("legend", {}, t("Tags")),
          tagBoxes.length ? el("div", { class: "chips" }, tagBoxes)
            : el("p", { class: "muted small" }, t("No tags yet: add them below."))),
        el("fieldset", {}, el("legend", {}, t("Checklist")),
          lineBoxes.length ? lineBoxes : el("p", { class: "muted small" }, t("No checklist yet: write it below."))),
        el("label", { class: "check-line" }, reviewed, t("Reviewed")),
        el("div", {}, save));
      markForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        const body = {
          reviewed: reviewed.checked,
          tags: tagBoxes.map((l) => l.firstChild).filter((b) => b.checked).map((b) => b.value),
        };
        if (lineBoxes.length) {
          body.checks = Object.fromEntries(lineBoxes.map((l) => [l.firstChild.value, l.firstChild.checked]));
        }
        save.disabled = true;
        try {
          const saved = await api(`/api/calls/${callId}/review`, { method: "PUT", json: body });
          review = { ...saved, comments: review.comments };
          draw();
          notice(t("Review saved."), "ok");
        } catch (err) {
          notice(t("Not saved: {reason}", { reason: err.message }), "error");
        } finally {
          save.disabled = false;
        }
      });
      return markForm;
    }

    /* The head's shared lists, one line per tag or checklist line. */
    function setupForm() {
      const tags = el("textarea", { name: "tags", id: "setup-tags", rows: 4 }, setup.tags.join("\n"));
      const lines = el("textarea", { name: "checklist", id: "setup-checklist", rows: 4 },
        setup.checklist.map((c) => c.text).join("\n"));
      const save = el("button", { type: "submit", id: "setup-save" }, t("Save the lists"));
      const form = el("form", { class: "setup-form" },
        el("label", {}, t("Tags, one per line"), tags),
        el("label", {}, t("Checklist, one line per point"), lines), el("div", {}, save));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const split = (v) => v.split("\n").map((x) => x.trim()).filter(Boolean);
        save.disabled = true;
        try {
          setup = await api("/api/review/setup", { method: "PUT",
            json: { tags: split(tags.value), checklist: split(lines.value) } });
          draw();
          notice(t("Saved."), "ok");
        } catch (err) {
          notice(t("Not saved: {reason}", { reason: err.message }), "error");
        } finally {
          save.disabled = false;
        }
      });
      return el("details", { class: "review-setup" },
        el("summary", {}, t("The tag list and the checklist")), form);
    }

    function draw() {
      clear(reviewBox,
        el("h2", { id: "review-title" }, t("Review")),
        status(),
        isHead ? markForm() : verdict(),
        el("h3", {}, t("Comments")),
        commentList(),
        isHead ? setupForm() : null);
      drawMarks();
      shown = undefined;
      showNow();
    }

    async function start() {
      try {
        [review, setup] = await Promise.all([api(`/api/calls/${callId}/review`), api("/api/review/setup")]);
      } catch (err) {
        clear(reviewBox, el("h2", { id: "review-title" }, t("Review")), el("p", { class: "error" }, err.message));
        return;
      }
      if (playerAudio) {
        if (playerWaveBox) playerWaveBox.append(marks);
        clear(commentSlot, now, isHead ? form : null,
          isHead ? el("button", { type: "button", class: "link", id: "comment-here",
                                  onclick: () => commentHere(playerAudio.currentTime) },
            t("Comment at the current moment")) : null);
        playerAudio.addEventListener("timeupdate", showNow);
        playerAudio.addEventListener("seeked", showNow);
        playerAudio.addEventListener("loadedmetadata", drawMarks);
        // The head's click on the waveform picks the moment to comment on: the one the click moved
        // the audio to (the waveform seeks first, then the click reaches its box).
        if (isHead && playerWaveBox) {
          playerWaveBox.addEventListener("click", (event) => {
            if (event.target.closest && event.target.closest(".comment-mark")) return;
            requestAnimationFrame(() => commentHere(playerAudio.currentTime));
          });
        }
        if (wave) wave.on("ready", drawMarks);
      }
      draw();
    }
    start();
  }

  function loadReview(recording) {
    const box = document.getElementById("review");
    if (box) reviewOfCall(box, recording);
  }

  async function load() {
    let call;
    try {
      let managers;
      [call, managers] = await Promise.all([
        api(`/api/calls/${callId}`), api("/api/managers").then((d) => d.items).catch(() => []),
      ]);
      managerNames = Object.fromEntries(managers.map((m) => [m.extension, m.name]));
    } catch (err) {
      clear(root, el("p", { class: "error" }, err.message));
      return;
    }
    const wanted = Number(params.get("rec") || 0);
    const recording = call.playable.find((r) => r.id === wanted) || call.playable[0];
    const who = (call.client && call.client.name) || call.client_number_display || call.client_number;
    let title;
    if (who) {
      title = call.direction === "inbound" ? t("Call from {client}", { client: who })
        : t("Call to {client}", { client: who });
    } else {
      title = call.callee ? t("Call to {manager}", { manager: managerLabel(call.callee, call.callee_name) }) : t("Call");
    }
    document.title = `${title} · pbxbridge`;
    const segments = recording ? call.transcript.filter((s) => s.recording_id === recording.id) : [];
    const reviewBox = el("section", { class: "card review", id: "review", "aria-labelledby": "review-title" });
    clear(root,
      el("p", { class: "crumbs" }, el("a", { href: "/calls" }, t("Calls")), " / ", title),
      el("h1", {}, title),
      el("div", { class: "call-layout" },
        el("aside", { class: "card" }, facts(call),
          call.playable.length > 1 ? el("div", { class: "recs" }, t("Recordings:"), " ",
            call.playable.map((r, i) => el("a", { href: `?rec=${r.id}`, class: r === recording ? "active" : "" },
              r.kind === "voicemail" ? t("voicemail") : `#${i + 1}`)))
            : null),
        el("div", { class: "call-main" },
          recording ? player(call, recording, segments)
            : el("section", { class: "card" }, el("p", { class: "muted" }, t("This call has no recording with sound."))),
          recording ? null : scriptBox,
          reviewBox)));
    loadReview(recording);
    loadScript(recording, segments);
  }
  load();
})();
