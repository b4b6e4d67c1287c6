// Explore: one metric over a range, one small chart per tag key (top values), a click on
// a value filters by it, and "Add to dashboard" turns the view into a panel. The whole
// state (metric, aggregate, range, filters) is in the URL. No build step.

const config = JSON.parse(document.getElementById("explore-config").textContent);
const Plotly = window.Plotly;
const PLOT_CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
const $ = (id) => document.getElementById(id);
let generation = 0;

function state() {
  const params = new URLSearchParams(window.location.search);
  return {
    metric: params.get("metric") || "",
    agg: params.get("agg") || "avg",
    from: params.get("from") || "now-24h",
    where: params.getAll("where").filter(Boolean),
  };
}

function writeUrl(next) {
  const params = new URLSearchParams();
  if (next.metric) params.set("metric", next.metric);
  params.set("agg", next.agg);
  params.set("from", next.from);
  for (const where of next.where) params.append("where", where);
  window.history.pushState(null, "", `${window.location.pathname}?${params}`);
  load();
}

function controlsFromUrl() {
  const current = state();
  $("explore-metric").value = current.metric;
  $("explore-agg").value = current.agg;
  $("explore-range").value = current.from;
  const chips = $("explore-filters");
  chips.innerHTML = "";
  for (const where of current.where) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "filter-chip";
    chip.dataset.where = where;
    chip.textContent = `${where} ×`;
    chip.title = "remove this filter";
    chip.addEventListener("click", () => writeUrl({ ...state(), where: state().where.filter((w) => w !== where) }));
    chips.appendChild(chip);
  }
}

function filterBy(key, value) {
  const current = state();
  // One equality per key: a new value replaces the key's old filter.
  const where = current.where.filter((w) => !w.startsWith(`${key}:`));
  where.push(`${key}:${value}`);
  writeUrl({ ...current, where });
}

function breakdownCard(breakdown) {
  const card = document.createElement("section");
  card.className = "card breakdown";
  card.dataset.key = breakdown.key;
  card.innerHTML = `<h2 class="panel-title"></h2><div class="breakdown-chart"></div><div class="value-chips"></div>`;
  card.querySelector(".panel-title").textContent = `by ${breakdown.key}`;
  const chips = card.querySelector(".value-chips");
  for (const value of breakdown.values) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "breakdown-value";
    chip.dataset.key = breakdown.key;
    chip.dataset.value = value;
    chip.textContent = value;
    chip.title = `filter by ${breakdown.key}:${value}`;
    chip.addEventListener("click", () => filterBy(breakdown.key, value));
    chips.appendChild(chip);
  }
  return card;
}

async function load() {
  const mine = ++generation;
  controlsFromUrl();
  const current = state();
  const status = $("explore-status");
  const breakdowns = $("breakdowns");
  if (!current.metric) {
    status.textContent = "Pick a metric.";
    breakdowns.innerHTML = "";
    document.body.dataset.exploreState = "empty";
    return;
  }
  status.textContent = "Loading…";
  document.body.dataset.exploreState = "loading";
  const url = new URL(config.urls.data, window.location.origin);
  url.search = window.location.search;
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (mine !== generation) return;
  const body = await response.json();
  if (!response.ok) {
    status.textContent = body.error || `HTTP ${response.status}`;
    document.body.dataset.exploreState = "error";
    return;
  }
  await Plotly.react($("explore-main"), body.figure.data, body.figure.layout, PLOT_CONFIG);
  breakdowns.innerHTML = "";
  for (const breakdown of body.breakdowns) {
    const card = breakdownCard(breakdown);
    breakdowns.appendChild(card);
    const chart = card.querySelector(".breakdown-chart");
    await Plotly.react(chart, breakdown.figure.data, breakdown.figure.layout, PLOT_CONFIG);
    // A click on a line is a click on its value (the trace's name), unless it is "other".
    chart.on("plotly_click", (event) => {
      const name = event.points && event.points[0] && event.points[0].data.name;
      if (name && breakdown.values.includes(name)) filterBy(breakdown.key, name);
    });
  }
  const info = body.inspect;
  status.textContent = `${info.tier} · ${info.buckets} buckets of ${info.bucket} · ${info.matched_series} series · ${info.server_ms} ms`;
  document.body.dataset.exploreState = "ready";
}

let searchTimer = null;
function searchMetrics(text) {
  window.clearTimeout(searchTimer);
  searchTimer = window.setTimeout(async () => {
    const url = new URL(config.urls.metrics, window.location.origin);
    url.search = new URLSearchParams({ project: config.project, search: text, limit: "50" });
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) return;
    const body = await response.json();
    const list = $("explore-metric-list");
    list.innerHTML = "";
    for (const entry of body.metrics) list.appendChild(new Option(entry.name, entry.name));
  }, 200);
}

async function addToDashboard() {
  const current = state();
  const status = $("explore-status");
  const filters = current.where.length ? ` (${current.where.join(", ")})` : "";
  const panel = {
    title: `${current.metric}${filters}`.slice(0, 200),
    kind: "line",
    metric: current.metric,
    agg: current.agg,
    filters: current.where,
    bucket: "auto",
    width: 6,
    height: 4,
  };
  const response = await fetch(config.urls.add, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": config.csrf },
    body: JSON.stringify({ dashboard: $("explore-dashboard").value, panel }),
  });
  const body = await response.json();
  if (!response.ok) {
    status.textContent = `Not added: ${(body.detail || []).map((d) => `${d.field}: ${d.error}`).join("; ") || body.error}`;
    return;
  }
  window.location.assign(body.url);
}

for (const agg of config.aggs) $("explore-agg").add(new Option(agg, agg));
for (const [label, value] of config.presets) $("explore-range").add(new Option(label, value));
$("explore-metric").addEventListener("input", (event) => searchMetrics(event.target.value));
$("explore-metric").addEventListener("change", (event) => {
  const metric = event.target.value.trim();
  // Another metric has other tags: the filters of the old one do not carry over.
  if (metric !== state().metric) writeUrl({ ...state(), metric, where: [] });
});
$("explore-agg").addEventListener("change", (event) => writeUrl({ ...state(), agg: event.target.value }));
$("explore-range").addEventListener("change", (event) => writeUrl({ ...state(), from: event.target.value }));
if ($("explore-add")) $("explore-add").addEventListener("click", addToDashboard);
window.addEventListener("popstate", load);
searchMetrics("");
load();
