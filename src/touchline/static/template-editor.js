// The template editor's live preview: as the team types, the server renders the template for the chosen
// contact and this script puts the answer (a fragment of sanitised HTML) in place. Declared by
// <form data-preview-url data-preview-target>; the form's own CSRF token goes with every request.
"use strict";

(() => {
  const form = document.querySelector("form[data-preview-url]");
  const target = form && document.getElementById(form.dataset.previewTarget);
  if (!form || !target) {
    return;
  }
  const WAIT_MS = 300; // after the last keystroke, so that typing a word asks once
  let timer = null;
  let inFlight = null;
  let asked = 0;

  async function refresh() {
    asked += 1;
    const mine = asked;
    if (inFlight) {
      inFlight.abort();
    }
    inFlight = new AbortController();
    target.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(form.dataset.previewUrl, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        signal: inFlight.signal,
      });
      const fragment = await response.text();
      if (mine !== asked) {
        return; // a later edit has asked again
      }
      if (response.ok) {
        target.innerHTML = fragment;
      } else {
        target.textContent = `The preview could not be made (${response.status}); reload the page and try again.`;
      }
    } catch (error) {
      if (error.name !== "AbortError" && mine === asked) {
        target.textContent = "The preview could not be reached; check the connection and keep typing.";
      }
    } finally {
      if (mine === asked) {
        target.removeAttribute("aria-busy");
      }
    }
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, WAIT_MS);
  }

  form.addEventListener("input", schedule);
  // The contact picker reports only "change"; text fields already asked on "input".
  form.addEventListener("change", (event) => {
    if (event.target instanceof HTMLSelectElement) {
      schedule();
    }
  });
})();
