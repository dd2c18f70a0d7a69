/* On every page a manager has open: a call of one of their own clients nobody answered is
   announced at once, with the way to the list of clients to call back. */
"use strict";

(() => {
  const { t, tn, el, clear, role } = PBX;
  // The missed-calls page announces on its own; heads and ops have no clients of their own.
  if (role !== "manager" || location.pathname === "/missed") return;
  // The query is one look-up of the newest calls by id: cheap enough to ask often.
  const POLL_MS = 10000;
  let after = null;
  let box = null;

  function show(items) {
    if (!box) {
      // Its look is in a stylesheet of its own: this runs on pages whose sheets do not know it.
      document.head.append(el("link", { rel: "stylesheet", href: "/static/css/missed_alert.css" }));
      box = el("div", { id: "missed-call-alert", class: "missed-call-alert", role: "alert" });
      document.body.append(box);
    }
    const names = items.map((i) => i.client_name || i.number_display).join(", ");
    clear(box, el("div", { class: "notice notice-alert" },
      tn("Missed call from your client: {names}", "Missed calls from your clients: {names}", items.length, { names }),
      " ", el("a", { href: "/missed" }, t("Call back")),
      " ", el("button", { type: "button", class: "link", onclick: () => clear(box) }, t("Dismiss"))));
  }

  async function poll() {
    try {
      // Not PBX.api: a poll in the background must never take the page to the sign-in form.
      const response = await fetch("/api/missed/alerts" + (after === null ? "" : "?after=" + after),
        { credentials: "same-origin" });
      // Signed out (here or in another tab): nothing more to hear of until the next sign-in.
      if (response.status === 401) return;
      if (!response.ok) throw new Error("HTTP " + response.status);
      const data = await response.json();
      if (after !== null && data.items.length) show(data.items);
      after = Math.max(after || 0, data.latest, ...data.items.map((i) => i.call_id));
    } catch (err) {
      // A page left open through a restart (or a session that ended) just tries again later.
    }
    setTimeout(poll, POLL_MS);
  }
  poll();
})();
