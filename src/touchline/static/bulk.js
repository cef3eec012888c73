// The bulk send pages: filter rows added and removed, the recipient count asked for as filters
// change, and a bulk send's progress refreshed until every email has left. Data comes from data-*
// attributes and JSON answers, and is put on the page as text only.
"use strict";

(() => {
  const form = document.getElementById("bulk-form");
  if (form) {
    const rows = document.getElementById("bulk-filter-rows");
    const count = document.getElementById("bulk-count");
    let timer = null;
    let asked = 0;

    const refreshCount = () => {
      const query = new URLSearchParams();
      for (const row of rows.querySelectorAll("[data-filter-row]")) {
        const field = row.querySelector("[name=field]").value.trim();
        if (!field) {
          continue;
        }
        query.append("field", field);
        query.append("op", row.querySelector("[name=op]").value);
        query.append("value", row.querySelector("[name=value]").value);
      }
      const ticket = ++asked;
      fetch(`${form.dataset.countUrl}?${query}`, { credentials: "same-origin" })
        .then((answer) => answer.json().then((body) => ({ ok: answer.ok, body })))
        .then(({ ok, body }) => {
          if (ticket !== asked) {
            return;
          }
          if (ok) {
            const skipped = body.skipped ? `, ${body.skipped} of them skipped (unsubscribed or undeliverable)` : "";
            count.textContent = `${body.recipients} endusers selected${skipped}`;
          } else {
            count.textContent = typeof body.detail === "string" ? body.detail : "These filters cannot be read yet.";
          }
        })
        .catch(() => {
          count.textContent = "The count could not be fetched; check your connection.";
        });
    };
    const soon = () => {
      clearTimeout(timer);
      timer = setTimeout(refreshCount, 250);
    };

    document.getElementById("bulk-add-filter").addEventListener("click", () => {
      const first = rows.querySelector("[data-filter-row]");
      const row = first.cloneNode(true);
      row.querySelector("[name=field]").value = "";
      row.querySelector("[name=value]").value = "";
      row.querySelector("[name=op]").selectedIndex = 0;
      rows.appendChild(row);
      row.querySelector("[name=field]").focus();
    });
    rows.addEventListener("click", (event) => {
      const button = event.target.closest("[data-remove-filter]");
      if (!button) {
        return;
      }
      const all = rows.querySelectorAll("[data-filter-row]");
      const row = button.closest("[data-filter-row]");
      if (all.length > 1) {
        row.remove();
      } else {
        row.querySelector("[name=field]").value = "";
        row.querySelector("[name=value]").value = "";
      }
      soon();
    });
    rows.addEventListener("input", soon);
    rows.addEventListener("change", soon);
    refreshCount();
  }

  const progress = document.getElementById("bulk-progress");
  if (progress) {
    const continues = document.getElementById("bulk-continues");
    const show = (body) => {
      for (const cell of progress.querySelectorAll("[data-progress-field]")) {
        const value = body[cell.dataset.progressField];
        cell.textContent = value === null || value === undefined ? "" : String(value);
      }
      continues.hidden = !body.continues;
    };
    const poll = () => {
      fetch(progress.dataset.progressUrl, { credentials: "same-origin" })
        .then((answer) => (answer.ok ? answer.json() : null))
        .then((body) => {
          if (!body) {
            return;
          }
          show(body);
          const done = body.status !== "queueing" && body.in_queue === 0 && body.waiting === 0;
          if (!done) {
            setTimeout(poll, body.waiting ? 30000 : 2000);
          }
        })
        .catch(() => setTimeout(poll, 10000));
    };
    setTimeout(poll, 1000);
  }
})();
