// auditrelay web UI: progressive enhancement only. Every page and form works without this
// file; it adds confirmations, hides fields that do not apply, and keeps the replay table
// current while a job is in progress.
(function () {
  "use strict";

  // A form with data-confirm asks first (deleting, removing), and says it did in its
  // `confirmed` field; without this script the server asks on a page of its own.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (!question) {
      return;
    }
    if (!window.confirm(question)) {
      event.preventDefault();
      return;
    }
    var confirmed = event.target.querySelector("input[name=confirmed]");
    if (confirmed) {
      confirmed.value = "yes";
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

  // A destination's form shows the settings of the kind picked, and no other kind's (the
  // server reads only the chosen kind's either way).
  function syncKind() {
    var kind = document.getElementById("kind");
    if (!kind) {
      return;
    }
    Array.prototype.forEach.call(document.querySelectorAll(".kind-settings"), function (set) {
      set.hidden = set.getAttribute("data-kind") !== kind.value;
    });
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
            revealScripted(current);
            if (fresh.getAttribute("data-refresh") === "true") {
              refreshReplay(0);
            } else {
              current.removeAttribute("data-refresh");
              // The job has ended: another may be sent.
              var send = document.getElementById("send-replay");
              var busy = document.getElementById("busy-hint");
              if (send) {
                send.disabled = false;
                send.removeAttribute("aria-describedby");
              }
              if (busy) {
                busy.remove();
              }
            }
          }
        })
        .catch(function () {
          refreshReplay(failures + 1);
        });
    }, Math.min(2000 * Math.pow(2, failures), 30000));
  }

  // Text that is only true when this script runs ("this table updates by itself").
  function revealScripted(root) {
    Array.prototype.forEach.call(root.querySelectorAll(".js-only"), function (el) {
      el.hidden = false;
    });
  }

  // A custom replay range is typed in the browser's time zone: the page comes with UTC values
  // (what it says without this script), shown here as local times, and each input's UTC value
  // is shown under it and sent along (`start_at_utc`, `end_at_utc`), which the server prefers.
  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }
  function localValue(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      "T" + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }
  function zoneName() {
    var minutes = -new Date().getTimezoneOffset();
    var sign = minutes < 0 ? "-" : "+";
    minutes = Math.abs(minutes);
    return "UTC" + sign + pad(Math.floor(minutes / 60)) + ":" + pad(minutes % 60);
  }
  function syncUtc(input) {
    var hidden = document.getElementById(input.id + "_utc");
    var shown = document.getElementById(input.id + "-utc");
    var date = input.value ? new Date(input.value) : null;
    if (!date || isNaN(date.getTime())) {
      hidden.value = "";
      shown.textContent = "";
      return;
    }
    hidden.value = date.toISOString().replace(/\.\d{3}Z$/, "Z");
    shown.textContent = "In UTC: " + hidden.value.replace("T", " ").replace("Z", "");
  }
  function localizeRange() {
    var inputs = document.querySelectorAll("input[data-utc]");
    if (inputs.length === 0) {
      return;
    }
    Array.prototype.forEach.call(inputs, function (input) {
      ["value", "min", "max"].forEach(function (attr) {
        var utc = attr === "value" ? input.value : input.getAttribute(attr);
        var date = utc ? new Date(utc + "Z") : null;
        if (date && !isNaN(date.getTime())) {
          if (attr === "value") {
            input.value = localValue(date);
          } else {
            input.setAttribute(attr, localValue(date));
          }
        }
      });
      syncUtc(input);
    });
    var zone = zoneName();
    Array.prototype.forEach.call(document.querySelectorAll("#custom-range .zone"), function (el) {
      el.textContent = "(your time, " + zone + ")";
    });
    var hint = document.getElementById("zone-hint");
    if (hint) {
      hint.textContent = "For a custom range, in your browser's time zone (" + zone +
        "); the UTC time is shown under each.";
    }
  }

  document.addEventListener("change", function (event) {
    if (event.target.id === "range") {
      syncRange();
    } else if (event.target.id === "kind") {
      syncKind();
    } else if (event.target.id === "region") {
      syncPortals();
    } else if (event.target.hasAttribute("data-utc")) {
      syncUtc(event.target);
    }
  });
  document.addEventListener("input", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-utc")) {
      syncUtc(event.target);
    }
  });

  revealScripted(document);
  localizeRange();
  syncRange();
  syncKind();
  syncPortals();
  refreshReplay(0);
})();
