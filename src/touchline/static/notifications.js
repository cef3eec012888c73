// Engagement notifications for the signed-in user: read from /notifications/stream (server-sent
// events), shown as an in-page toast and, once the user allowed it, with the browser's Notification API.
(function () {
  "use strict";
  if (!window.EventSource) return;

  function toastArea() {
    let area = document.getElementById("notification-toasts");
    if (!area) {
      area = document.createElement("div");
      area.id = "notification-toasts";
      area.setAttribute("role", "status");
      area.setAttribute("aria-live", "polite");
      document.body.appendChild(area);
    }
    return area;
  }

  function showToast(notice) {
    const toast = document.createElement("div");
    toast.className = "toast " + notice.kind;
    const title = document.createElement("strong");
    title.textContent = notice.title;
    toast.appendChild(title);
    if (notice.body) {
      const body = document.createElement("span");
      body.textContent = notice.body;
      toast.appendChild(body);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.className = "link";
    close.textContent = "Dismiss";
    toast.appendChild(close);
    toastArea().appendChild(toast);
    leaveLater(toast, close);
  }

  // A toast leaves once it has been in view for TOAST_MS: its time does not run while the page is
  // hidden (another tab, a minimised window) or while the pointer or the keyboard focus is on it, so
  // a notice that arrives while nobody looks is still there when they come back (WCAG 2.2.1).
  const TOAST_MS = 15000;
  function leaveLater(toast, close) {
    let left = TOAST_MS;
    let since = 0;
    let timer = null;
    let held = false;
    let gone = false;
    function stop() {
      if (timer === null) return;
      window.clearTimeout(timer);
      timer = null;
      left -= Date.now() - since;
    }
    function run() {
      if (gone || timer !== null || held || document.visibilityState !== "visible") return;
      since = Date.now();
      timer = window.setTimeout(leave, Math.max(left, 0));
    }
    function onVisibility() {
      if (document.visibilityState === "visible") run(); else stop();
    }
    function leave() {
      gone = true;
      stop();
      document.removeEventListener("visibilitychange", onVisibility);
      toast.remove();
    }
    function hold() { held = true; stop(); }
    function release() {
      held = toast.matches(":hover") || toast.contains(document.activeElement);
      run();
    }
    toast.addEventListener("mouseenter", hold);
    toast.addEventListener("mouseleave", release);
    toast.addEventListener("focusin", hold);
    toast.addEventListener("focusout", function () { window.setTimeout(release, 0); });
    close.addEventListener("click", leave);
    document.addEventListener("visibilitychange", onVisibility);
    run();
  }

  function showDesktop(notice) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      new Notification(notice.title, { body: notice.body || "", tag: "touchline-" + notice.id });
    } catch (error) {
      // Some browsers offer notifications only from a service worker; the toast still shows.
    }
  }

  // A page may ask its stream to start after a given notification (the settings page after a test).
  const start = document.getElementById("notifications-stream-after");
  const after = start ? start.dataset.after : null;
  const stream = new EventSource("/notifications/stream" + (after ? "?after=" + encodeURIComponent(after) : ""));
  // Marks the page once the stream is open: from then on every new notification reaches it.
  stream.addEventListener("open", function () { document.documentElement.dataset.notificationStream = "open"; });
  stream.addEventListener("notification", function (event) {
    let notice;
    try { notice = JSON.parse(event.data); } catch (error) { return; }
    showToast(notice);
    showDesktop(notice);
  });

  function permissionState() {
    const state = document.getElementById("notifications-permission-state");
    if (!state) return;
    if (!("Notification" in window)) {
      state.textContent = "This browser has no desktop notifications.";
    } else if (Notification.permission === "granted") {
      state.textContent = "Desktop notifications are allowed.";
    } else if (Notification.permission === "denied") {
      state.textContent = "Desktop notifications are blocked in this browser's site settings.";
    } else {
      state.textContent = "";
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    const ask = document.getElementById("notifications-permission");
    permissionState();
    if (!ask || !("Notification" in window)) return;
    // Browsers ask only in answer to a click.
    ask.addEventListener("click", function () {
      Notification.requestPermission().then(permissionState);
    });
  });
})();
