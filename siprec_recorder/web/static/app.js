// The portal's only script: ask before destructive buttons, and small helpers below.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});

// Tick every recording of the page for a bulk label change.
document.addEventListener("change", (event) => {
  if (event.target.id === "select-all") {
    for (const box of document.querySelectorAll("input[name=ids]")) {
      box.checked = event.target.checked;
    }
  }
});

// Tell the server the browser's time zone: it shows times in it (zone marked) and reads
// the times typed in forms in it.
(() => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const current = document.cookie.split("; ").find((c) => c.startsWith("tz="));
  if (current !== "tz=" + encodeURIComponent(zone)) {
    document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; SameSite=Strict; max-age=31536000";
  }
})();
