// anycloud dashboard: refreshes every panel from /ui/panel/<name> every few
// seconds (paused while the tab is hidden); a lost session goes back to login.
(function () {
  "use strict";
  var PERIOD_MS = 5000;
  var stamp = document.getElementById("updated");
  function refresh() {
    if (document.hidden) return;
    var panels = document.querySelectorAll("[data-panel]");
    var pending = [];
    panels.forEach(function (p) {
      var name = p.getAttribute("data-panel");
      pending.push(fetch("/ui/panel/" + encodeURIComponent(name), { credentials: "same-origin" })
        .then(function (res) {
          if (res.redirected || res.status === 401) { window.location = "/ui/login"; return; }
          if (!res.ok) throw new Error(name + ": HTTP " + res.status);
          return res.text().then(function (html) {
            p.querySelector(".body").innerHTML = html;
          });
        }));
    });
    Promise.all(pending).then(function () {
      if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
    }).catch(function (e) {
      if (stamp) stamp.textContent = "refresh failed: " + e.message;
    });
  }
  if (document.querySelector("[data-panel]")) {
    if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
    setInterval(refresh, PERIOD_MS);
    document.addEventListener("visibilitychange", refresh);
  }
})();
