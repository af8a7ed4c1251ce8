// Cartero admin panel: the copy button on the new-token page. Everything else works without script.
"use strict";

function copyFrom(input, note) {
  const done = (text) => { if (note) note.textContent = text; };
  const fallback = () => {
    input.focus();
    input.select();
    // Older browsers and plain-HTTP origins have no async clipboard API.
    const ok = document.execCommand && document.execCommand("copy");
    done(ok ? "Copied." : "Select the token and copy it by hand.");
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(input.value).then(() => done("Copied."), fallback);
  } else {
    fallback();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const input = document.getElementById(button.dataset.copy);
    const note = document.getElementById("copy-note");
    if (!input) continue;
    button.addEventListener("click", () => copyFrom(input, note));
  }
});
