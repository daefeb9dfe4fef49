/* The project's own small script: live refresh of server-rendered fragments.
 *
 * An element with data-live-url is re-fetched every 2 seconds and its content replaced by
 * the answer. Polling stops when the fragment carries data-live-stop (the process no longer
 * moves on its own), when the answer is not a fragment (e.g. the session expired: the page
 * is reloaded to show the login), or on an HTTP error. Forms with data-confirm ask first.
 * Pages work without this script; only the live refresh needs it.
 */
(function () {
  "use strict";
  var INTERVAL_MS = 2000;

  function poll(element) {
    var url = element.getAttribute("data-live-url");
    var stopped = false;

    function schedule() {
      if (!stopped) { window.setTimeout(tick, INTERVAL_MS); }
    }

    function tick() {
      if (document.hidden) { schedule(); return; }
      fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "X-Requested-With": "fetch", "Accept": "text/html" }
      }).then(function (response) {
        if (!response.ok) { stopped = true; return null; }
        return response.text();
      }).then(function (html) {
        if (html === null || html === undefined) { return; }
        if (html.indexOf("data-live-root") === -1) {
          stopped = true;
          window.location.reload();
          return;
        }
        var active = document.activeElement;
        if (active && element.contains(active) && active.form) {
          schedule();  // someone is typing in a form in here: do not clobber it
          return;
        }
        element.innerHTML = html;
        if (element.querySelector("[data-live-stop]")) { stopped = true; }
        element.dispatchEvent(new CustomEvent("live:updated", { bubbles: true }));
        schedule();
      }).catch(function () {
        schedule();  // a network hiccup: try again
      });
    }

    if (!element.querySelector("[data-live-stop]")) { schedule(); }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var elements = document.querySelectorAll("[data-live-url]");
    for (var i = 0; i < elements.length; i++) { poll(elements[i]); }
  });
})();
