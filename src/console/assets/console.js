// safetynet console: small helpers; every page works without them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Put the keyboard on the first error, so a screen reader reads it.
  const alert = document.querySelector("[role=alert]");
  if (alert) {
    alert.setAttribute("tabindex", "-1");
    alert.focus();
  }
});
