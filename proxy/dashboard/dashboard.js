// The live page: polls /_s3tier/live every second and draws what it says. Every figure is the
// server's own (proxy/live.py); this file only formats them. Each figure's element carries its
// raw value in data-value, so what is shown can be checked against /_s3tier/stats.
"use strict";

const POLL_MS = 1000;
const COLORS = {
  hit_ram: "#2563eb", hit_disk: "#7c3aed", hit_peer: "#0891b2", miss: "#dc2626",
  revalidated: "#16a34a", stale: "#ca8a04", bypass: "#6b7280",
  ram: "#2563eb", disk: "#7c3aed", peer: "#0891b2", upstream: "#dc2626",
};

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}
function count(n) { return Math.round(n).toLocaleString("en-US"); }
function percent(r) { return r === null || r === undefined ? "–" : (r * 100).toFixed(1) + "%"; }
function usd(x) {
  if (x === null || x === undefined) return "–";
  return "$" + (x >= 1 ? x.toFixed(2) : x.toFixed(6));
}
function ms(x) { return x === null || x === undefined ? "–" : x.toFixed(2) + " ms"; }
function duration(s) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + sec + "s";
}

function show(id, value, text) {
  const el = document.getElementById(id);
  el.dataset.value = value === null || value === undefined ? "" : String(value);
  el.textContent = text;
}

function rows(tbody, entries) {
  tbody.replaceChildren(...entries.map(([name, value, text]) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = name;
    const td = document.createElement("td");
    td.textContent = text;
    td.dataset.value = String(value);
    td.dataset.name = name;
    tr.append(th, td);
    return tr;
  }));
}

const charts = {};
function chart(id, names, format, colors) {
  const el = document.getElementById(id);
  const series = [{}].concat(names.map((name) => ({
    label: name, stroke: colors[name] || "#444", width: 1.5, spanGaps: false,
    value: (u, v) => (v === null || v === undefined ? "–" : format(v)),
  })));
  const opts = {
    width: Math.max(el.clientWidth, 300), height: 150, series,
    axes: [{ size: 30 }, { size: 72, values: (u, vals) => vals.map(format) }],
    legend: { live: false }, cursor: { show: false },
  };
  charts[id] = new uPlot(opts, [[], ...names.map(() => [])], el);
}
function draw(id, t, lines) {
  if (charts[id]) charts[id].setData([t, ...lines]);
}

function setUp() {
  chart("chart-rps", ["hit_ram", "hit_disk", "hit_peer", "miss", "revalidated", "stale", "bypass"],
    (v) => v.toFixed(1), COLORS);
  chart("chart-ratio", ["requests", "bytes"], (v) => (v * 100).toFixed(0) + "%",
    { requests: "#2563eb", bytes: "#16a34a" });
  chart("chart-bytes", ["ram", "disk", "peer", "upstream"], bytes, COLORS);
  chart("chart-latency", ["hit_ram p50", "hit_ram p99", "miss p50", "miss p99"],
    (v) => v.toFixed(1),
    { "hit_ram p50": "#2563eb", "hit_ram p99": "#93c5fd", "miss p50": "#dc2626", "miss p99": "#fca5a5" });
  chart("chart-upstream", ["requests", "errors"], (v) => v.toFixed(1),
    { requests: "#6b7280", errors: "#dc2626" });
  chart("chart-saved", ["USD/h"], (v) => "$" + v.toFixed(4), { "USD/h": "#16a34a" });
}

function render(live) {
  const s = live.stats;
  const series = live.series;
  const last = (xs) => (xs && xs.length ? xs[xs.length - 1] : null);
  const rpsNow = Object.values(series.rps).reduce((sum, xs) => sum + (last(xs) || 0), 0);
  show("rps", rpsNow, rpsNow.toFixed(1));
  show("hit-ratio", s.hit_ratio, percent(s.hit_ratio));
  show("byte-hit-ratio", s.byte_hit_ratio, percent(s.byte_hit_ratio));
  show("saved-usd", s.savings.usd, usd(s.savings.usd));
  show("saved-per-hour", s.savings.usd_per_hour, usd(s.savings.usd_per_hour));
  show("requests-avoided", s.savings.requests_avoided, count(s.savings.requests_avoided));
  show("bytes-avoided", s.savings.bytes_avoided, bytes(s.savings.bytes_avoided));
  show("in-flight", s.in_flight, count(s.in_flight));
  show("upstream-requests", s.upstream_requests, count(s.upstream_requests));
  show("upstream-errors", s.upstream_errors, count(s.upstream_errors));
  show("upstream-bytes", s.upstream_received_bytes, bytes(s.upstream_received_bytes));
  show("prefetch-issued", s.prefetch_bytes.issued, bytes(s.prefetch_bytes.issued));
  show("prefetch-used", s.prefetch_bytes.used, bytes(s.prefetch_bytes.used));
  show("prefetch-wasted", s.prefetch_bytes.wasted, bytes(s.prefetch_bytes.wasted));
  document.getElementById("uptime").textContent =
    "up " + duration(live.uptime_s) + " · last " + duration(live.window_s) + " drawn";

  rows(document.querySelector("#results tbody"),
    Object.entries(s.cache_results).map(([name, n]) => [name, n, count(n)]));
  rows(document.querySelector("#served tbody"),
    Object.entries(s.served_bytes).map(([name, n]) => [name, n, bytes(n)]));
  const latency = document.querySelector("#latency tbody");
  latency.replaceChildren(...Object.entries(live.latency).map(([name, q]) => {
    const tr = document.createElement("tr");
    const cells = [name, ms(q.p50_ms), ms(q.p99_ms)].map((text, i) => {
      const cell = document.createElement(i === 0 ? "th" : "td");
      cell.textContent = text;
      return cell;
    });
    tr.append(...cells);
    return tr;
  }));

  const tiers = document.getElementById("tiers");
  tiers.replaceChildren(...Object.entries(s.tiers).map(([name, tier]) => {
    const div = document.createElement("div");
    const capacity = tier.capacity_bytes;
    const share = capacity ? tier.used_bytes / capacity : 0;
    div.innerHTML = "";
    const label = document.createElement("div");
    label.textContent = name + ": " + bytes(tier.used_bytes) + " of " + bytes(capacity) +
      " (" + percent(share) + "), " + count(tier.entries) + " blocks";
    label.id = "tier-" + name;
    label.dataset.value = String(tier.used_bytes);
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = Math.min(100, share * 100).toFixed(1) + "%";
    bar.append(fill);
    div.append(label, bar);
    return div;
  }));

  const warm = document.querySelector("#warm tbody");
  if (live.warm_jobs.length) {
    warm.replaceChildren(...live.warm_jobs.map((job) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = job.bucket + "/" + (job.prefix || "");
      const td = document.createElement("td");
      const share = job.bytes_total ? job.bytes_done / job.bytes_total : null;
      td.textContent = job.state + " · " + count(job.objects_done) + " of " +
        count(job.objects_total) + " objects · " + bytes(job.bytes_done) + " (" + percent(share) +
        ")" + (job.eta_s !== null ? " · " + duration(job.eta_s) + " left" : "");
      tr.append(th, td);
      return tr;
    }));
  }
  const fleet = document.getElementById("fleet");
  if (live.fleet) {
    fleet.textContent = live.fleet.members.length + " members, " + live.fleet.circuits_open +
      " skipped now; this node is " + live.fleet.me;
  }
  document.getElementById("prices").textContent = "Prices: $" +
    s.savings.prices.get_per_1000_usd + " per 1,000 GETs, $" + s.savings.prices.egress_per_gib_usd +
    " per GiB (" + s.savings.price_source + ").";

  const t = series.t;
  draw("chart-rps", t, ["hit_ram", "hit_disk", "hit_peer", "miss", "revalidated", "stale", "bypass"]
    .map((name) => series.rps[name]));
  draw("chart-ratio", t, [series.hit_ratio, series.byte_hit_ratio]);
  draw("chart-bytes", t, ["ram", "disk", "peer", "upstream"].map((name) => series.served_bps[name]));
  draw("chart-latency", t, [series.p50_ms.hit_ram, series.p99_ms.hit_ram, series.p50_ms.miss,
    series.p99_ms.miss]);
  draw("chart-upstream", t, [series.upstream_rps, series.upstream_errors_ps]);
  draw("chart-saved", t, [series.saved_usd_per_hour]);
}

function status(text, ok) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = "status " + (ok ? "ok" : "down");
}

function message(text) {
  const el = document.getElementById("message");
  el.hidden = !text;
  el.textContent = text || "";
}

let updates = 0;
async function poll() {
  try {
    const answer = await fetch("/_s3tier/live", { credentials: "same-origin", cache: "no-store" });
    if (answer.status === 401 || answer.status === 403) {
      message("This s3tier asks for its admin token: open /_s3tier/?token=<admin token> once.");
      status("signed out", false);
    } else if (!answer.ok) {
      status("error " + answer.status, false);
    } else {
      render(await answer.json());
      updates += 1;
      document.body.dataset.updates = String(updates);
      message("");
      status("live", true);
    }
  } catch (err) {
    status("unreachable", false);
  }
  setTimeout(poll, POLL_MS);
}

setUp();
poll();
