// The transcript pane of a recording page: both legs side by side, hits highlighted, and a
// click on a line seeks the player there. Text goes in with textContent only (never HTML).
(() => {
  const pane = document.getElementById("transcript");
  if (!pane) return;
  const legsBox = document.getElementById("transcript-legs");
  const form = document.getElementById("transcript-find");
  const player = document.getElementById("player");
  const id = pane.dataset.recording;

  const terms = (q) => {
    const out = [];
    for (const m of q.matchAll(/"([^"]*)"?|(\S+)/g)) {
      const chunk = m[1] !== undefined ? m[1] : m[2];
      const prefix = m[1] === undefined && chunk.endsWith("*");
      const words = chunk.toLowerCase().match(/[\p{L}\p{N}_]+/gu) || [];
      words.forEach((w, i) => out.push({ w, prefix: prefix && i === words.length - 1 }));
    }
    return out;
  };
  const matches = (word, ts) => {
    const w = word.toLowerCase().replace(/[^\p{L}\p{N}_]/gu, "");
    return w && ts.some((t) => w === t.w || (t.prefix && w.startsWith(t.w)));
  };
  const clock = (s) => {
    const m = Math.floor(s / 60);
    return `${m}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
  };

  const show = (doc, q) => {
    legsBox.replaceChildren();
    if (!doc.available) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = "No transcript for this call (yet).";
      legsBox.append(p);
      return;
    }
    const ts = terms(q);
    for (const leg of doc.legs) {
      const col = document.createElement("div");
      col.className = "transcript-leg";
      const h = document.createElement("h3");
      h.textContent = leg.speaker || `leg ${leg.label}`;
      col.append(h);
      const inOrder = [...leg.segments].sort((a, b) => a.start_s - b.start_s);
      for (const seg of inOrder) {
        const line = document.createElement("button");
        line.type = "button";
        line.className = seg.hit ? "transcript-line link hit" : "transcript-line link";
        line.dataset.start = seg.start_s;
        const at = document.createElement("span");
        at.className = "mono small";
        at.textContent = clock(seg.start_s) + " ";
        line.append(at);
        for (const word of seg.text.split(/(\s+)/)) {
          if (ts.length && matches(word, ts)) {
            const mark = document.createElement("mark");
            mark.textContent = word;
            line.append(mark);
          } else {
            line.append(document.createTextNode(word));
          }
        }
        col.append(line);
      }
      legsBox.append(col);
    }
  };

  const load = async (q) => {
    const url = `/api/recordings/${encodeURIComponent(id)}/transcript` + (q ? `?text=${encodeURIComponent(q)}` : "");
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok) {
      legsBox.textContent = "The transcript cannot be shown.";
      return;
    }
    show(await r.json(), q);
  };

  legsBox.addEventListener("click", (event) => {
    const line = event.target.closest(".transcript-line");
    if (!line || !player) return;
    player.currentTime = Number(line.dataset.start);
    player.play();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(form.elements.text.value);
  });
  const q = new URLSearchParams(window.location.search).get("text") || "";
  form.elements.text.value = q;
  load(q);
})();
