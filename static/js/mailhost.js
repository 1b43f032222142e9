// Mailhost: small progressive enhancement. Every page works without it.
(function () {
  "use strict";

  function announce(text) {
    var live = document.getElementById("live-region");
    if (live) { live.textContent = ""; window.setTimeout(function () { live.textContent = text; }, 50); }
  }

  // Copy buttons: <button data-copy="text"> or <button data-copy-target="element-id">.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) { return navigator.clipboard.writeText(text); }
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
    return Promise.resolve();
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy], [data-copy-target]");
    if (!button) { return; }
    var text = button.getAttribute("data-copy");
    if (text === null) {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      text = target ? target.textContent.trim() : "";
    }
    copyText(text).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      announce("Copied to the clipboard");
      window.setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // "Go back" links: back in history when there is one; the link's own target otherwise.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-history-back]");
    if (link && window.history.length > 1) { event.preventDefault(); window.history.back(); }
  });

  // Selects that submit their form when changed (the organisation switcher); the form keeps
  // a submit button for people without JavaScript, hidden here.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    var button = select.form && select.form.querySelector("[data-autosubmit-button]");
    if (button) { button.classList.add("visually-hidden"); }
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // Live regions that refresh from a URL returning an HTML fragment, until it says it is final
  // (data-final on the fragment's root): live DNS checks, import progress.
  document.querySelectorAll("[data-refresh-url]").forEach(function (region) {
    var every = parseInt(region.getAttribute("data-refresh-every") || "3", 10) * 1000;
    var tries = 0;
    function tick() {
      if (region.querySelector("[data-final]") || tries++ > 400) { return; }
      fetch(region.getAttribute("data-refresh-url"), { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
        .then(function (html) { region.innerHTML = html; })
        .catch(function () {})
        .then(function () { window.setTimeout(tick, every); });
    }
    window.setTimeout(tick, every);
  });
})();
