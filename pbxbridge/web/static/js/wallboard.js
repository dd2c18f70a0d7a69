/* Live wallboard: calls in progress, callers waiting, managers' lines, pushed over a WebSocket. */
"use strict";

(() => {
  const { el, clear, fmtDuration, direction } = PBX;
  const root = document.getElementById("wallboard-page");
  const STATE_TEXT = { idle: "free", ringing: "ringing", in_call: "on a call", paused: "paused", unavailable: "offline" };
  const status = el("span", { class: "live-status", id: "live-status" }, "connecting…");
  const tiles = el("div", { class: "tiles big" });
  const managers = el("div", { class: "lines", id: "lines" });
  const calls = el("table", { class: "grid", id: "live-calls" });
  const waiting = el("table", { class: "grid", id: "live-waiting" });
  clear(root,
    el("div", { class: "card-head" }, el("h1", {}, "Wallboard"), status),
    tiles,
    el("div", { class: "wall-layout" },
      el("section", { class: "card" }, el("h2", {}, "Managers"), managers),
      el("section", { class: "card flush" }, el("h2", { class: "pad" }, "Calls in progress"), calls),
      el("section", { class: "card flush" }, el("h2", { class: "pad" }, "Callers waiting"), waiting)));

  let snapshot = null;
  let names = {};
  PBX.api("/api/managers").then((d) => { names = Object.fromEntries(d.items.map((m) => [m.extension, m.name])); render(); })
    .catch(() => {});
  let receivedAt = 0;

  function elapsed(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    return fmtDuration(seconds + (Date.now() - receivedAt) / 1000);
  }

  function render() {
    if (!snapshot) return;
    const s = snapshot;
    const talking = s.managers.filter((m) => m.state === "in_call").length;
    const free = s.managers.filter((m) => m.state === "idle").length;
    const longest = s.waiting.reduce((a, c) => Math.max(a, c.duration_s || 0), 0);
    clear(tiles, [["Calls in progress", s.calls.length, "calls"], ["Callers waiting", s.waiting.length, s.waiting.length ? "alert" : ""],
      ["Longest wait", s.waiting.length ? elapsed(longest) : "—", ""], ["Managers talking", talking, ""], ["Managers free", free, "ok"]]
      .map(([label, value, kind]) => el("div", { class: "tile " + kind }, el("div", { class: "value" }, String(value)), el("div", { class: "label" }, label))));
    clear(managers, s.managers.length ? s.managers.map((m) => el("div", { class: "line line-" + m.state, dataset: { extension: m.extension } },
      el("div", { class: "ext" }, m.extension),
      el("div", { class: "name" }, names[m.extension] || "\u00a0"),
      el("div", { class: "state" }, STATE_TEXT[m.state] || m.state),
      el("div", { class: "since" }, m.since_s !== null ? elapsed(m.since_s) : (m.queues || []).join(", "))))
      : el("p", { class: "muted" }, "No line seen yet."));
    clear(calls,
      el("thead", {}, el("tr", {}, ["Direction", "Client", "Manager", "Queue", "Duration", "Talk"].map((h) => el("th", {}, h)))),
      el("tbody", {}, s.calls.length ? s.calls.map((c) => el("tr", { class: "live-call", dataset: { linkedid: c.linkedid } },
        el("td", {}, direction(c.direction)), el("td", {}, c.client_number || "—"),
        el("td", {}, c.manager || (c.ringing && c.ringing.length ? "ringing " + c.ringing.join(", ") : "—")),
        el("td", {}, (c.queues || []).join(", ") || "—"), el("td", { class: "num" }, elapsed(c.duration_s)),
        el("td", { class: "num" }, c.talk_s !== null ? elapsed(c.talk_s) : "—")))
        : el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No calls right now."))));
    clear(waiting,
      el("thead", {}, el("tr", {}, ["Caller", "Queue", "Waiting", "Ringing"].map((h) => el("th", {}, h)))),
      el("tbody", {}, s.waiting.length ? s.waiting.map((c) => el("tr", {},
        el("td", {}, c.client_number || "—"), el("td", {}, (c.queues || []).join(", ") || "—"),
        el("td", { class: "num" }, elapsed(c.duration_s)), el("td", {}, (c.ringing || []).join(", ") || "—")))
        : el("tr", {}, el("td", { colspan: 4, class: "empty" }, "Nobody is waiting."))));
  }

  let delay = 1000;
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/live");
    ws.onopen = () => { status.textContent = "live"; status.className = "live-status on"; delay = 1000; };
    ws.onmessage = (event) => { snapshot = JSON.parse(event.data); receivedAt = Date.now(); render(); };
    ws.onclose = () => {
      status.textContent = "reconnecting…"; status.className = "live-status off";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
  setInterval(render, 1000);
})();
