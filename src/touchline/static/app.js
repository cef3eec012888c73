// The one script of touchline's pages. Pages carry no inline script or event handler (the
// Content-Security-Policy forbids them); what a page needs is declared in data attributes, read here.
"use strict";

// <form data-confirm="Question?">: the form is sent only if the person confirms. The question is an
// attribute value, escaped by the template like any other text, so user data in it stays text.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.dataset.confirm === undefined) {
    return;
  }
  if (!window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
