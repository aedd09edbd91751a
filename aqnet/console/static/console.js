// aqnet console: the little script its pages use. No library, nothing fetched but the console's own JSON.
// 1. The commissioning view polls its JSON every 3 s and redraws the verdict, findings and readings.
// 2. On a series chart, two clicks on points fill the decision form's start and end (a period to validate).
"use strict";

function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}

function fmt(value, unit) {
  // rounded to 4 decimals, as the page first shows it (Jinja's round(4))
  return value === null || value === undefined ? "–" : `${Math.round(Number(value) * 1e4) / 1e4} ${unit || ""}`;
}

function drawCommissioning(box, state) {
  const verdict = document.getElementById("verdict");
  verdict.textContent = state.verdict;
  verdict.className = `verdict verdict-${state.verdict}`;
  const findings = document.getElementById("findings");
  const items = state.findings.map(f => text("li", `${f.level} ${f.device_id || ""}: ${f.message}`));
  findings.replaceChildren(...(items.length ? items : [text("li", findings.dataset.none)]));
  const body = document.querySelector("#readings tbody");
  if (!state.readings.length) return;
  body.replaceChildren(...state.readings.map(r => {
    const tr = document.createElement("tr");
    tr.append(text("td", r.time), text("td", r.device_id), text("td", r.variable), text("td", fmt(r.raw_value, r.raw_unit)),
              text("td", fmt(r.value, r.unit)), text("td", r.flags.join(", ") || "–"));
    return tr;
  }));
}

function pollCommissioning() {
  const box = document.getElementById("commissioning");
  if (!box) return;
  const source = box.dataset.source;
  const tick = async () => {
    try {
      const answer = await fetch(source, {credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (answer.ok) drawCommissioning(box, await answer.json());
    } catch (e) { /* offline for a moment: try again at the next tick */ }
  };
  setInterval(tick, 3000);
}

function plusMinute(local) {
  // "YYYY-MM-DDTHH:MM" (the network's zone, from the chart) one minute later: the period's end is exclusive
  const d = new Date(`${local}:00Z`);
  return new Date(d.getTime() + 60000).toISOString().slice(0, 16);
}

function selectPeriod() {
  const chart = document.getElementById("series-chart");
  const start = document.getElementById("starts_at");
  const end = document.getElementById("ends_at");
  if (!chart || !start || !end) return;
  let first = null;
  chart.addEventListener("click", event => {
    const point = event.target.closest("circle.point");
    if (!point) return;
    if (first === null) chart.querySelectorAll("circle.chosen").forEach(c => c.classList.remove("chosen"));
    point.classList.add("chosen");
    if (first === null) {
      first = point.dataset.local;
      start.value = first;
      end.value = "";
    } else {
      const [a, b] = [first, point.dataset.local].sort();
      start.value = a;
      end.value = plusMinute(b);
      first = null;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => { pollCommissioning(); selectPeriod(); });
