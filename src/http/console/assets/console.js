// The console works without this script; it adds a copy button for a new
// secret and a confirmation before a rotate or a revoke is sent.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.dataset.copy);
      var said = document.getElementById("copied");
      var done = function (text) { if (said) { said.textContent = text; } };
      field.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(
          function () { done("Copied to the clipboard."); },
          function () { done("Select the key and copy it (Ctrl+C)."); }
        );
      } else {
        done(document.execCommand("copy") ? "Copied to the clipboard." : "Select the key and copy it (Ctrl+C).");
      }
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  });
});
