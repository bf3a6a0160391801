// The triage page's keyboard shortcuts and "select all". Everything works without this file: links, forms and
// checkboxes are plain HTML; this only adds keys. Served from the package (CSP script-src 'self'), no library.
(function () {
  "use strict";

  function typing(event) {
    var el = event.target;
    var tag = el && el.tagName;
    return el && (el.isContentEditable || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT");
  }

  function follow(selector) {
    var link = document.querySelector(selector);
    if (link) { window.location.assign(link.href); }
    return !!link;
  }

  // -- the list: j/k move the focus between quirks, x selects, Enter opens (the link has the focus) --------
  var links = Array.prototype.slice.call(document.querySelectorAll("table.quirks a.quirk-link"));

  function current() {
    return links.indexOf(document.activeElement);
  }

  function focusRow(index) {
    if (!links.length) { return; }
    index = Math.max(0, Math.min(links.length - 1, index));
    links.forEach(function (a) { a.closest("tr").classList.remove("current"); });
    var link = links[index];
    link.closest("tr").classList.add("current");
    link.focus();
    link.scrollIntoView({block: "nearest"});
  }

  links.forEach(function (a, i) {
    a.addEventListener("focus", function () {
      links.forEach(function (b) { b.closest("tr").classList.remove("current"); });
      a.closest("tr").classList.add("current");
    });
  });

  var pickAll = document.getElementById("pick-all");
  if (pickAll) {
    pickAll.hidden = false;
    pickAll.addEventListener("change", function () {
      document.querySelectorAll("table.quirks input[name=ids]").forEach(function (box) { box.checked = pickAll.checked; });
    });
  }

  // -- one quirk: r/t/n/o choose a verdict and put the cursor in the note; Enter there saves ---------------
  function chooseVerdict(verdict) {
    var radio = document.querySelector("#verdict-form input[data-verdict=" + verdict + "]");
    if (!radio) { return false; }
    radio.checked = true;
    var note = document.getElementById("v-note");
    if (note) { note.focus(); note.select(); }
    return true;
  }

  var verdictKeys = {r: "reproduce", t: "retire", n: "noise", o: "open"};

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) { return; }
    var key = event.key;
    var done = false;
    if (key === "?") {
      var help = document.getElementById("shortcuts");
      if (help) { help.open = !help.open; if (help.open) { help.querySelector("summary").focus(); } done = true; }
    } else if (key === "/") {
      var search = document.querySelector("[data-shortcut=search]");
      if (search) { search.focus(); search.select(); done = true; }
    } else if (links.length && (key === "j" || key === "k")) {
      var at = current();
      focusRow(at < 0 ? 0 : at + (key === "j" ? 1 : -1));
      done = true;
    } else if (links.length && key === "x") {
      var row = current() >= 0 ? links[current()].closest("tr") : null;
      var box = row && row.querySelector("input[name=ids]");
      if (box) { box.checked = !box.checked; done = true; }
    } else if (key === "j") {
      done = follow("[data-shortcut=next]");
    } else if (key === "k") {
      done = follow("[data-shortcut=previous]");
    } else if (key === "u") {
      done = follow("[data-shortcut=up]");
    } else if (verdictKeys[key]) {
      done = chooseVerdict(verdictKeys[key]);
    }
    if (done) { event.preventDefault(); }
  });
})();
