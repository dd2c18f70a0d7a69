/* One call: waveform player (wavesurfer.js), skips, speed, keys, and a transcript that follows
   the audio and seeks on click. */
"use strict";

(() => {
  const { t, api, el, clear, fmtTime, fmtDuration, fmtClock, badge, direction, managerLabel } = PBX;
  const root = document.getElementById("call-page");
  const callId = document.body.dataset.callId;
  const params = new URLSearchParams(location.search);
  const startAt = Number(params.get("t") || 0);
  const SPEEDS = [0.75, 1, 1.25, 1.5, 2];
  const SKIP_S = 10;     // the −10 s / +10 s buttons
  const ARROW_S = 5;     // ← and →
  const SPEED_KEY = "pbxbridge.playbackRate";
  let wave = null;

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
      waveBox, audio.parentNode ? null : audio,
      el("p", { class: "muted small keys-hint" }, t("Keys: space plays and pauses, ← and → step {seconds} s.",
        { seconds: ARROW_S })),
      el("h2", {}, t("Transcript")), view);
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
    clear(root,
      el("p", { class: "crumbs" }, el("a", { href: "/calls" }, t("Calls")), " / ", title),
      el("h1", {}, title),
      el("div", { class: "call-layout" },
        el("aside", { class: "card" }, facts(call),
          call.playable.length > 1 ? el("div", { class: "recs" }, t("Recordings:"), " ",
            call.playable.map((r, i) => el("a", { href: `?rec=${r.id}`, class: r === recording ? "active" : "" },
              r.kind === "voicemail" ? t("voicemail") : `#${i + 1}`)))
            : null),
        recording ? player(call, recording, segments)
          : el("section", { class: "card" }, el("p", { class: "muted" }, t("This call has no recording with sound.")))));
  }
  load();
})();
