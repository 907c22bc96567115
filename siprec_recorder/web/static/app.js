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

// The waveform of the call (peaks from the server, one colour per leg) and a clock that
// shows the duration before playing; a click on the waveform seeks there.
(() => {
  const canvas = document.getElementById("waveform");
  const audio = document.getElementById("player");
  const clock = document.getElementById("player-time");
  if (!audio) return;
  const total = Number(clock ? clock.dataset.duration : 0) || 0;
  const fmt = (s) => {
    s = Math.max(0, Math.round(s));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  };
  const duration = () => (Number.isFinite(audio.duration) && audio.duration > 0 ? audio.duration : total);
  let peaks = null;
  const colours = ["#1f5fbf", "#d9730d"];
  const draw = () => {
    if (!canvas || !peaks) return;
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, n = peaks.channels.length;
    ctx.clearRect(0, 0, w, h);
    peaks.channels.forEach((values, ch) => {
      const band = h / n, mid = band * ch + band / 2;
      ctx.fillStyle = colours[ch % colours.length];
      const step = w / Math.max(1, values.length);
      values.forEach((v, i) => {
        const bar = Math.max(1, (v / 100) * (band / 2 - 2));
        ctx.fillRect(i * step, mid - bar, Math.max(1, step - 0.5), bar * 2);
      });
    });
    const d = duration();
    if (d > 0) {
      ctx.fillStyle = "#b3261e";
      ctx.fillRect((audio.currentTime / d) * w - 1, 0, 2, h);
    }
  };
  const tick = () => {
    if (clock) clock.textContent = fmt(audio.currentTime) + " / " + fmt(duration());
    draw();
  };
  audio.addEventListener("timeupdate", tick);
  audio.addEventListener("loadedmetadata", tick);
  if (canvas) {
    fetch(canvas.dataset.src, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((data) => {
        if (!data || !data.channels.length) return;
        peaks = data;
        canvas.hidden = false;
        canvas.dataset.drawn = "yes";
        draw();
      });
    canvas.addEventListener("click", (event) => {
      const box = canvas.getBoundingClientRect();
      const d = duration();
      if (d > 0) {
        audio.currentTime = ((event.clientX - box.left) / box.width) * d;
        tick();
      }
    });
  }
})();
