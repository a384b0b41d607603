// Refreshes the parts of the page marked data-live in place, every few
// seconds: the page works without this script, only it does not update.
(function () {
  "use strict";
  var every = (parseInt(document.body.getAttribute("data-refresh"), 10) || 5) * 1000;
  var token = document.getElementById("token");
  if (token && window.sessionStorage) {
    token.value = sessionStorage.getItem("spoolgate-token") || "";
    token.form.addEventListener("submit", function () { sessionStorage.setItem("spoolgate-token", token.value); });
  }
  function tick() {
    fetch(location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh) { el.replaceWith(document.adoptNode(fresh)); }
        });
        document.body.classList.remove("stale");
      })
      .catch(function () { document.body.classList.add("stale"); })
      .finally(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
