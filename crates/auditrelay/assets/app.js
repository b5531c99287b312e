// auditrelay web UI: progressive enhancement only. Every page and form works without this
// file; it adds confirmations, hides fields that do not apply, and keeps the replay table
// current while a job is in progress.
(function () {
  "use strict";

  // A form with data-confirm asks first (deleting, removing).
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // The custom start and end only matter when "Custom range" is picked.
  function syncRange() {
    var range = document.getElementById("range");
    var custom = document.getElementById("custom-range");
    if (!range || !custom) {
      return;
    }
    custom.hidden = range.value !== "custom";
  }

  // "View region" narrows the "Dev Portal" choices to the portals of that region.
  function syncPortals() {
    var region = document.getElementById("region");
    var portal = document.getElementById("portal");
    if (!region || !portal) {
      return;
    }
    var firstVisible = null;
    Array.prototype.forEach.call(portal.options, function (option) {
      var own = option.getAttribute("data-region");
      option.hidden = own !== null && own !== region.value;
      option.disabled = option.hidden;
      if (!option.hidden && own !== null && firstVisible === null) {
        firstVisible = option;
      }
    });
    var selected = portal.options[portal.selectedIndex];
    if (selected && selected.hidden) {
      portal.value = firstVisible ? firstVisible.value : "";
    }
  }

  // While a replay job is accepted, pending or running, fetch the page again every two
  // seconds and swap in its status table. The live region itself stays in place, so screen
  // readers announce the new status. A failed fetch is retried later and later, and given up
  // after a few (the Refresh link still works).
  function refreshReplay(failures) {
    failures = failures || 0;
    var current = document.getElementById("replay-status");
    if (!current || current.getAttribute("data-refresh") !== "true" || failures > 5) {
      return;
    }
    window.setTimeout(function () {
      // Marked as a refresh: the server audits an open page's own refreshes once a minute,
      // not every two seconds.
      fetch(window.location.pathname, {
        credentials: "same-origin",
        headers: { "X-Auditrelay-Refresh": "1" }
      })
        .then(function (response) {
          return response.ok ? response.text() : Promise.reject(response.status);
        })
        .then(function (html) {
          var fresh = new DOMParser()
            .parseFromString(html, "text/html")
            .getElementById("replay-status");
          if (fresh) {
            current.innerHTML = fresh.innerHTML;
            if (fresh.getAttribute("data-refresh") === "true") {
              refreshReplay(0);
            } else {
              current.removeAttribute("data-refresh");
            }
          }
        })
        .catch(function () {
          refreshReplay(failures + 1);
        });
    }, Math.min(2000 * Math.pow(2, failures), 30000));
  }

  document.addEventListener("change", function (event) {
    if (event.target.id === "range") {
      syncRange();
    } else if (event.target.id === "region") {
      syncPortals();
    }
  });

  syncRange();
  syncPortals();
  refreshReplay(0);
})();
