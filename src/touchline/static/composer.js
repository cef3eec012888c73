// The composer: with a stored template chosen, the subject and body come from the template, so the
// fields for writing one are set aside (still sent, so nothing typed is lost when switching back).
"use strict";

document.querySelectorAll("form.composer-form").forEach((form) => {
  const picker = form.querySelector("select[name=template_id]");
  const written = form.querySelector(".composer-written");
  if (!(picker instanceof HTMLSelectElement) || !(written instanceof HTMLElement)) {
    return;
  }
  const show = () => {
    written.hidden = picker.value !== "";
  };
  picker.addEventListener("change", show);
  show();
});
