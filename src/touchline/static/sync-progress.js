// The Email page's sync counts: asked for again every second while a sync is waiting or running, and
// every ten seconds between syncs (a sync starts by itself; changing the folders starts one). Put on
// the page as text only.
"use strict";

(() => {
  const panel = document.getElementById("sync-progress");
  if (!panel) {
    return;
  }
  const words = { waiting: "Waiting for the first sync.", syncing: "Syncing now.", synced: "Sync finished." };
  const show = (progress) => {
    panel.dataset.state = progress.state;
    for (const field of panel.querySelectorAll("[data-sync-field]")) {
      const key = field.dataset.syncField;
      field.textContent = key === "state" ? words[progress.state] : String(progress[key]);
    }
  };
  const refresh = () => {
    fetch(panel.dataset.progressUrl, { credentials: "same-origin" })
      .then((answer) => (answer.ok ? answer.json() : Promise.reject(answer.status)))
      .then((progress) => {
        show(progress);
        setTimeout(refresh, progress.state === "synced" ? 10000 : 1000);
      })
      .catch(() => setTimeout(refresh, 10000));
  };
  setTimeout(refresh, panel.dataset.state === "synced" ? 10000 : 1000);
})();
