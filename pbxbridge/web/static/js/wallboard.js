/* Live wallboard: the department's totals, managers' lines, calls in progress and callers waiting,
   pushed over a WebSocket. TV mode (/wallboard?tv=1, or the button): large type, no header, full
   screen where the browser allows it; the board keeps updating. */
"use strict";

(() => {
  const { t, el, clear, fmtDuration, fmtNumber, direction, managerLabel, role } = PBX;
  const root = document.getElementById("wallboard-page");
  const STATE_TEXT = {
    idle: t("free"), ringing: t("ringing"), in_call: t("on a call"), paused: t("paused"), unavailable: t("offline"),
  };
  const params = new URLSearchParams(location.search);
  let tv = params.get("tv") === "1";

  const status = el("span", { class: "live-status", id: "live-status", role: "status" }, t("connecting…"));
  const tvButton = el("button", { type: "button", class: "button tv-toggle", id: "tv-toggle" });
  const fullButton = el("button", { type: "button", class: "button tv-full", id: "tv-full" }, t("Full screen"));
  const tiles = el("div", { class: "tiles big", id: "wall-totals" });
  const managers = el("div", { class: "lines", id: "lines" });
  const calls = el("table", { class: "grid", id: "live-calls" });
  const waiting = el("table", { class: "grid", id: "live-waiting" });
  clear(root,
    el("div", { class: "card-head wall-head" }, el("h1", {}, t("Wallboard")), status,
      el("span", { class: "wall-buttons" }, fullButton, tvButton)),
    tiles,
    el("div", { class: "wall-layout" },
      el("section", { class: "card" }, el("h2", {}, t("Managers")), managers),
      el("section", { class: "card flush" }, el("h2", { class: "pad" }, t("Calls in progress")), el("div", { class: "scroll" }, calls)),
      el("section", { class: "card flush" }, el("h2", { class: "pad" }, t("Callers waiting")), el("div", { class: "scroll" }, waiting))));

  /* TV mode is a class on the body: the stylesheet hides the header and enlarges the type. */
  function applyTv() {
    document.body.classList.toggle("tv", tv);
    tvButton.textContent = tv ? t("Leave TV mode") : t("TV mode");
    tvButton.setAttribute("aria-pressed", tv ? "true" : "false");
    fullButton.hidden = !tv || !document.fullscreenEnabled || Boolean(document.fullscreenElement);
    const url = new URL(location.href);
    if (tv) url.searchParams.set("tv", "1"); else url.searchParams.delete("tv");
    history.replaceState(null, "", url);
  }
  function fullScreen() {
    // Browsers allow full screen only from a click or a key press, never on load.
    if (document.fullscreenEnabled && !document.fullscreenElement) {
      document.documentElement.requestFullscreen().catch(() => {}).finally(applyTv);
    }
  }
  tvButton.addEventListener("click", () => {
    tv = !tv;
    if (tv) fullScreen();
    else if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    applyTv();
  });
  fullButton.addEventListener("click", fullScreen);
  document.addEventListener("fullscreenchange", applyTv);
  applyTv();

  let snapshot = null;
  let receivedAt = 0;

  function elapsed(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    return fmtDuration(seconds + (Date.now() - receivedAt) / 1000);
  }

  const names = () => (snapshot && snapshot.names) || {};
  const person = (ext) => managerLabel(ext, names()[ext]);

  /* A client as people read them: the card's name over the number written the local way. */
  function client(c) {
    const number = c.client_display || c.client_number;
    if (!number) return el("span", { class: "muted" }, t("hidden number"));
    return el("span", { class: "who-called" },
      c.client_name ? el("span", { class: "client-name" }, c.client_name) : null,
      el("span", { class: "client-number" }, number));
  }

  function tile(id, label, value, kind, href) {
    return el("div", { class: "tile " + (kind || ""), id },
      el("div", { class: "value" }, href ? el("a", { href, class: "figure-link" }, value) : value),
      el("div", { class: "label" }, label));
  }

  /* The head opens the clients a figure counts (the drill-down lists exactly as many); TV mode has no
     one to click, so no link there. */
  function missedHref(missed) {
    if (role !== "head" || tv || !missed) return null;
    const q = new URLSearchParams({ kpi: "missed_not_called_back", from: missed.day, to: missed.day });
    return "/calls?" + q.toString();
  }

  function render() {
    if (!snapshot) return;
    const s = snapshot;
    const totals = s.totals || {};
    const talking = s.managers.filter((m) => m.state === "in_call").length;
    const free = s.managers.filter((m) => m.state === "idle").length;
    const missed = totals.missed_not_called_back;
    const waitingNow = totals.waiting ?? s.waiting.length;
    clear(tiles,
      tile("total-waiting", t("Waiting now"), fmtNumber(waitingNow, 0), waitingNow ? "alert" : ""),
      tile("total-longest", t("Longest wait now"), waitingNow ? elapsed(totals.longest_wait_s) : "—", waitingNow ? "alert" : ""),
      tile("total-missed", t("Missed today, not called back"), missed ? fmtNumber(missed.callers, 0) : "—",
        missed && missed.callers ? "alert" : "ok", missedHref(missed)),
      tile("total-calls", t("Calls in progress"), fmtNumber(s.calls.length, 0), "calls"),
      tile("total-talking", t("Managers talking"), fmtNumber(talking, 0), ""),
      tile("total-free", t("Managers free"), fmtNumber(free, 0), "ok"));
    clear(managers, s.managers.length ? s.managers.map((m) => el("div", {
      class: "line line-" + m.state, dataset: { extension: m.extension },
      title: managerLabel(m.extension, m.name),
    },
      el("div", { class: "name" }, m.name || t("Extension {ext}", { ext: m.extension })),
      el("div", { class: "ext" }, m.extension),
      el("div", { class: "state" }, STATE_TEXT[m.state] || m.state),
      el("div", { class: "since" }, m.since_s !== null ? elapsed(m.since_s) : (m.queues || []).join(", "))))
      : el("p", { class: "muted" }, t("No line seen yet.")));
    clear(calls,
      el("thead", {}, el("tr", {}, [t("Direction"), t("Client"), t("Manager"), t("Queue"), t("Duration"), t("Talk")]
        .map((h, i) => el("th", { class: "col-" + i }, h)))),
      el("tbody", {}, s.calls.length ? s.calls.map((c) => el("tr", { class: "live-call", dataset: { linkedid: c.linkedid } },
        el("td", { class: "col-0" }, direction(c.direction)), el("td", { class: "col-1" }, client(c)),
        el("td", { class: "col-2" }, c.manager ? managerLabel(c.manager, c.manager_name)
          : (c.ringing && c.ringing.length ? t("ringing: {who}", { who: c.ringing.map(person).join(", ") }) : "—")),
        el("td", { class: "col-3" }, (c.queues || []).join(", ") || "—"),
        el("td", { class: "num col-4" }, elapsed(c.duration_s)),
        el("td", { class: "num col-5" }, c.talk_s !== null ? elapsed(c.talk_s) : "—")))
        : el("tr", {}, el("td", { colspan: 6, class: "empty" }, t("No calls right now.")))));
    clear(waiting,
      el("thead", {}, el("tr", {}, [t("Caller"), t("Queue"), t("Waiting"), t("Ringing")].map((h, i) => el("th", { class: "col-" + i }, h)))),
      el("tbody", {}, s.waiting.length ? s.waiting.map((c) => el("tr", { class: "waiting-call" },
        el("td", { class: "col-0" }, client(c)), el("td", { class: "col-1" }, (c.queues || []).join(", ") || "—"),
        el("td", { class: "num col-2" }, elapsed(c.duration_s)),
        el("td", { class: "col-3" }, (c.ringing || []).map(person).join(", ") || "—")))
        : el("tr", {}, el("td", { colspan: 4, class: "empty" }, t("Nobody is waiting.")))));
  }

  let delay = 1000;
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/live");
    ws.onopen = () => { status.textContent = t("live"); status.className = "live-status on"; delay = 1000; };
    ws.onmessage = (event) => { snapshot = JSON.parse(event.data); receivedAt = Date.now(); render(); };
    ws.onclose = () => {
      status.textContent = t("reconnecting…"); status.className = "live-status off";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
  setInterval(render, 1000);
})();
