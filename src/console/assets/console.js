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

// The review queue: one item at a time, decided with the keyboard.
// y match · n no match · s skip · u undo · ← → move. Decisions are sent
// with the page's CSRF token; the buttons work without this script.
document.addEventListener("DOMContentLoaded", () => {
  const queue = document.querySelector("section.review");
  if (!queue) return;
  const items = [...queue.querySelectorAll("article.item")];
  if (!items.length) return;
  let current = 0;
  const history = [];
  const left = document.getElementById("left");
  const decidedCount = document.getElementById("decided");

  const show = (i) => {
    current = (i + items.length) % items.length;
    items.forEach((item, j) => { item.hidden = j !== current; });
    items[current].focus();
  };
  const nextOpen = () => {
    for (let step = 1; step <= items.length; step++) {
      const j = (current + step) % items.length;
      if (!items[j].dataset.decided) { show(j); return; }
    }
  };
  const count = (delta) => {
    left.textContent = String(Number(left.textContent) - delta);
    decidedCount.textContent = String(Number(decidedCount.textContent) + delta);
  };
  const send = async (item, decision) => {
    const form = item.querySelector("form.decide");
    const body = new URLSearchParams();
    for (const name of ["source", "record_key", "person_id"]) {
      body.set(name, form.elements[name].value);
    }
    body.set("decision", decision);
    body.set("note", form.elements.note.value);
    const answer = await fetch(form.action, {
      method: "POST",
      headers: { "X-CSRF-Token": form.elements._csrf.value },
      body,
    });
    if (!answer.ok) {
      item.classList.add("failed");
      alert(`${answer.status}: ${(await answer.text()).replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").slice(0, 300)}`);
      return false;
    }
    return true;
  };
  const decide = async (decision) => {
    const item = items[current];
    if (item.dataset.decided) { nextOpen(); return; }
    if (!(await send(item, decision))) return;
    item.dataset.decided = decision;
    item.classList.add("decided");
    history.push(current);
    count(1);
    nextOpen();
  };
  const undo = async () => {
    const i = history.pop();
    if (i === undefined) return;
    if (!(await send(items[i], "undone"))) { history.push(i); return; }
    delete items[i].dataset.decided;
    items[i].classList.remove("decided");
    count(-1);
    show(i);
  };

  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select");
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const action = {
      y: () => decide("match"),
      n: () => decide("no_match"),
      s: () => show(current + 1),
      u: () => undo(),
      ArrowRight: () => show(current + 1),
      ArrowLeft: () => show(current - 1),
    }[event.key];
    if (action) { event.preventDefault(); action(); }
  });
  show(0);
});
