// The opportunity board: drag a card to another column (HTML5 drag and drop) or pick a stage in the
// card's menu. The card moves at once; the server checks the move (stage rules, approval lock,
// version) and, when it refuses, the card goes back and the reason is shown. No inline script (CSP).
(function () {
  "use strict";

  function setup(board) {
    var errorBox = document.querySelector("[data-kanban-error]");
    var statusBox = document.querySelector("[data-kanban-status]");
    var dragged = null;

    function show(box, text) {
      [errorBox, statusBox].forEach(function (b) { if (b) { b.classList.add("d-none"); } });
      if (box) { box.textContent = text; box.classList.remove("d-none"); }
    }

    function count(column, delta) {
      var badge = column.querySelector("[data-count]");
      if (badge) { badge.textContent = String(parseInt(badge.textContent, 10) + delta); }
    }

    function move(card, column) {
      var from = card.closest("[data-stage]");
      if (!column || from === column) { return; }
      var stage = column.getAttribute("data-stage");
      var body = { stage: stage, version: parseInt(card.getAttribute("data-version"), 10) };
      if (stage === "lost") {
        var reason = window.prompt(board.getAttribute("data-lost-prompt"));
        if (reason === null || !reason.trim()) { sync(card, from); return; }
        body.lost_reason = reason.trim();
      }
      var place = card.nextSibling;
      column.querySelector("[data-drop]").prepend(card);  // optimistic: move now, undo if refused
      count(from, -1); count(column, 1); sync(card, column);
      card.classList.add("crm-kanban-moving");
      var url = board.getAttribute("data-move-url").replace(/\/0\/stage$/, "/" + card.getAttribute("data-id") + "/stage");
      fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json",
                   "X-CSRFToken": board.getAttribute("data-csrf-token") },
        body: JSON.stringify(body)
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          return { ok: response.ok, data: data };
        });
      }).then(function (result) {
        card.classList.remove("crm-kanban-moving");
        if (result.ok) {
          card.setAttribute("data-version", String(result.data.version));
          var probability = card.querySelector("[data-probability]");
          if (probability) { probability.textContent = String(result.data.probability); }
          show(statusBox, board.getAttribute("data-moved-message").replace("{stage}", column.getAttribute("data-stage-label")));
          return;
        }
        undo(card, from, column, place);
        var error = (result.data && result.data.error) || {};
        var text = error.message || board.getAttribute("data-failed-message");
        if (error.fields) {
          Object.keys(error.fields).forEach(function (name) { text += " " + [].concat(error.fields[name]).join(" "); });
        }
        show(errorBox, text);
      }).catch(function () {
        card.classList.remove("crm-kanban-moving");
        undo(card, from, column, place);
        show(errorBox, board.getAttribute("data-failed-message"));
      });
    }

    function undo(card, from, column, place) {
      var drop = from.querySelector("[data-drop]");
      if (place && place.parentNode === drop) { drop.insertBefore(card, place); } else { drop.appendChild(card); }
      count(column, -1); count(from, 1); sync(card, from);
    }

    function sync(card, column) {
      var select = card.querySelector("[data-move]");
      if (select && column) { select.value = column.getAttribute("data-stage"); }
    }

    board.addEventListener("dragstart", function (event) {
      var card = event.target.closest && event.target.closest("[data-card]");
      if (!card || card.getAttribute("draggable") !== "true") { return; }
      dragged = card;
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.getAttribute("data-id"));
    });
    board.addEventListener("dragend", function () {
      dragged = null;
      board.querySelectorAll(".crm-kanban-over").forEach(function (el) { el.classList.remove("crm-kanban-over"); });
    });
    board.addEventListener("dragover", function (event) {
      var drop = event.target.closest && event.target.closest("[data-stage]");
      if (!drop || !dragged) { return; }
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      drop.querySelector("[data-drop]").classList.add("crm-kanban-over");
    });
    board.addEventListener("dragleave", function (event) {
      var drop = event.target.closest && event.target.closest("[data-drop]");
      if (drop && !drop.contains(event.relatedTarget)) { drop.classList.remove("crm-kanban-over"); }
    });
    board.addEventListener("drop", function (event) {
      var column = event.target.closest && event.target.closest("[data-stage]");
      if (!column || !dragged) { return; }
      event.preventDefault();
      column.querySelector("[data-drop]").classList.remove("crm-kanban-over");
      var card = dragged;
      dragged = null;
      move(card, column);
    });
    board.addEventListener("change", function (event) {
      if (!event.target.matches("[data-move]")) { return; }
      var card = event.target.closest("[data-card]");
      move(card, board.querySelector('[data-stage="' + event.target.value + '"]'));
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-kanban]").forEach(setup);
  });
})();
