/* One call: waveform player (wavesurfer.js), speed, transcript that follows the audio and seeks on click. */
"use strict";

(() => {
  const { api, el, clear, fmtTime, fmtDuration, fmtClock, badge, direction, managerLabel } = PBX;
  const root = document.getElementById("call-page");
  const callId = document.body.dataset.callId;
  const params = new URLSearchParams(location.search);
  const startAt = Number(params.get("t") || 0);
  let wave = null;
  // Whose side an unanswered call out stopped on (the journal's failure_reason).
  const FAILURE_REASONS = {
    manager_no_answer: "the manager did not pick up",
    manager_rejected: "the manager's handset refused the call",
    client_busy: "the client was busy",
    client_no_answer: "the client did not answer",
    not_placed: "the call could not be placed",
  };

  function facts(call) {
    const rows = [
      ["Started", fmtTime(call.started_at)],
      ["Direction", direction(call.direction)],
      ["Status", badge(call.status)],
      ["Client", call.client_id ? el("a", { href: `/clients/${call.client_id}` },
        (call.client && call.client.name) || call.client_number || "card") : (call.client_number || "—")],
      ["Number", call.client_number || "—"],
      ["Manager", managerLabel(call.manager, call.manager_name)],
      (call.transferred_to || []).length ? ["Transferred to", call.transferred_to.join(", ")]
        : call.final_manager && call.final_manager !== call.manager ? ["Transferred to", call.final_manager] : null,
      call.failure_reason ? ["Why", FAILURE_REASONS[call.failure_reason] || call.failure_reason] : null,
      call.voicemail ? ["Voicemail", call.voicemail_message ? "message left" : "reached, no message found"] : null,
      ["Rang", (call.rang || []).join(", ") || "—"],
      ["Queues", (call.queues || []).join(", ") || "—"],
      ["Wait", fmtDuration(call.wait_s)],
      ["Talk", fmtDuration(call.talk_s)],
      call.did ? ["DID", call.did] : null,
    ].filter(Boolean);
    return el("dl", { class: "facts" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  function transcriptView(segments, audio) {
    if (!segments.length) return el("p", { class: "muted" }, "No transcript yet.");
    const items = segments.map((seg, i) => {
      const words = (seg.words && seg.words.length ? seg.words : [{ start: seg.start, end: seg.end, word: seg.text }])
        .map((w) => el("span", { class: "word", dataset: { start: w.start, end: w.end },
                                onclick: () => seek(audio, Number(w.start), true) }, w.word, " "));
      return el("div", { class: "segment", dataset: { start: seg.start, end: seg.end, index: i } },
        el("button", { class: "time link", type: "button", onclick: () => seek(audio, seg.start, true) }, fmtClock(seg.start)),
        seg.speaker ? el("span", { class: "speaker speaker-" + seg.speaker }, seg.speaker) : null,
        el("p", { class: "text" }, words));
    });
    return el("div", { class: "transcript", id: "transcript" }, items);
  }

  function seek(audio, seconds, play) {
    if (wave) wave.setTime(seconds); else audio.currentTime = seconds;
    if (play) audio.play().catch(() => {});
  }

  function follow(audio, box) {
    let current = null;
    audio.addEventListener("timeupdate", () => {
      const t = audio.currentTime;
      const segs = box.querySelectorAll(".segment");
      let found = null;
      for (const seg of segs) {
        if (t >= Number(seg.dataset.start) && t < Number(seg.dataset.end) + 0.05) found = seg;
      }
      if (found !== current) {
        if (current) current.classList.remove("current");
        if (found) {
          found.classList.add("current");
          found.scrollIntoView({ block: "nearest", behavior: "smooth" });
        }
        current = found;
      }
      for (const w of box.querySelectorAll(".word.current")) w.classList.remove("current");
      if (found) {
        for (const w of found.querySelectorAll(".word")) {
          if (t >= Number(w.dataset.start) && t < Number(w.dataset.end)) w.classList.add("current");
        }
      }
    });
  }

  function player(call, recording, segments) {
    const audio = el("audio", { id: "audio", preload: "auto", src: recording.audio_url });
    const waveBox = el("div", { id: "waveform", class: "waveform" });
    const time = el("span", { class: "clock", id: "clock" }, "0:00");
    const play = el("button", { class: "primary play", id: "play", type: "button" }, "▶ Play");
    const speeds = el("div", { class: "speeds", role: "group", "aria-label": "Speed" },
      [1, 1.5, 2].map((rate) => el("button", {
        type: "button", class: rate === 1 ? "active" : "", dataset: { rate },
        onclick: (e) => {
          audio.playbackRate = rate;
          if (wave) wave.setPlaybackRate(rate, true);
          for (const b of speeds.children) b.classList.toggle("active", b === e.currentTarget);
        },
      }, `${rate}×`)));
    play.addEventListener("click", () => (audio.paused ? audio.play() : audio.pause()));
    audio.addEventListener("play", () => { play.textContent = "❚❚ Pause"; });
    audio.addEventListener("pause", () => { play.textContent = "▶ Play"; });
    audio.addEventListener("timeupdate", () => {
      time.textContent = `${fmtClock(audio.currentTime)} / ${fmtClock(audio.duration || recording.duration_s)}`;
    });
    audio.addEventListener("loadedmetadata", () => {
      if (startAt > 0) audio.currentTime = startAt;
    }, { once: true });
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
    const view = transcriptView(segments, audio);
    if (segments.length) follow(audio, view);
    return el("section", { class: "player card" },
      el("div", { class: "controls" }, play, speeds, time,
        el("a", { class: "button", href: recording.audio_url, download: "" }, "Download")),
      waveBox, audio.parentNode ? null : audio,
      el("h2", {}, "Transcript"), view);
  }

  async function load() {
    let call;
    try {
      call = await api(`/api/calls/${callId}`);
    } catch (err) {
      clear(root, el("p", { class: "error" }, err.message));
      return;
    }
    const wanted = Number(params.get("rec") || 0);
    const recording = call.playable.find((r) => r.id === wanted) || call.playable[0];
    const title = `${call.direction === "inbound" ? "Call from" : "Call to"} ${
      (call.client && call.client.name) || call.client_number || (call.callee ? "ext " + call.callee : "")}`;
    const segments = recording ? call.transcript.filter((s) => s.recording_id === recording.id) : [];
    clear(root,
      el("p", { class: "crumbs" }, el("a", { href: "/calls" }, "Calls"), " / ", title),
      el("h1", {}, title),
      el("div", { class: "call-layout" },
        el("aside", { class: "card" }, facts(call),
          call.playable.length > 1 ? el("div", { class: "recs" }, "Recordings: ",
            call.playable.map((r, i) => el("a", { href: `?rec=${r.id}`, class: r === recording ? "active" : "" },
              r.kind === "voicemail" ? "voicemail" : `#${i + 1}`)))
            : null),
        recording ? player(call, recording, segments)
          : el("section", { class: "card" }, el("p", { class: "muted" }, "This call has no recording with sound."))));
  }
  load();
})();
