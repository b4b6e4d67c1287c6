// Dashboard page: fetch every panel's figure in parallel and draw it with Plotly.react.
// The server builds the figures; this module only keeps the URL (range, refresh,
// variables) in step with the controls, draws, zooms and refreshes. No build step.

const config = JSON.parse(document.getElementById("dashboard-config").textContent);
const Plotly = window.Plotly;
const REFRESH_MS = { off: 0, "10s": 10_000, "1m": 60_000, "5m": 300_000 };
const PLOT_CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

const form = document.getElementById("dashboard-controls");
const fromInput = document.getElementById("range-from");
const toInput = document.getElementById("range-to");
const presetSelect = document.getElementById("range-preset");
const refreshSelect = document.getElementById("refresh");
const updated = document.getElementById("dashboard-updated");

let refreshTimer = null;
let generation = 0; // answers of an older load are dropped

/** Return the URL parameters of the current view (the page's own query string). */
function viewParams() {
  return new URLSearchParams(window.location.search);
}

/** Put the controls' state into the address bar without reloading the page. */
function writeUrl(params, push) {
  const url = `${window.location.pathname}?${params.toString()}`;
  if (push) window.history.pushState(null, "", url);
  else window.history.replaceState(null, "", url);
}

function paramsFromControls() {
  const params = new URLSearchParams();
  params.set("from", fromInput.value.trim() || config.defaults.from);
  params.set("to", toInput.value.trim() || config.defaults.to);
  params.set("refresh", refreshSelect.value);
  for (const variable of config.variables) {
    const select = document.getElementById(variable.param);
    const chosen = Array.from(select.selectedOptions, (option) => option.value).filter(Boolean);
    // An empty value says "nothing selected" so a non-empty default does not come back.
    if (chosen.length) chosen.forEach((value) => params.append(variable.param, value));
    else params.set(variable.param, "");
  }
  return params;
}

function controlsFromUrl() {
  const params = viewParams();
  fromInput.value = params.get("from") || config.defaults.from;
  toInput.value = params.get("to") || config.defaults.to;
  presetSelect.value = toInput.value === "now" && presetOption(fromInput.value) ? fromInput.value : "";
  refreshSelect.value = params.get("refresh") || config.defaults.refresh;
  for (const variable of config.variables) {
    if (!params.has(variable.param)) continue;
    const wanted = new Set(params.getAll(variable.param).filter(Boolean));
    const select = document.getElementById(variable.param);
    for (const value of wanted) {
      if (!Array.from(select.options).some((option) => option.value === value)) select.add(new Option(value, value));
    }
    for (const option of select.options) option.selected = wanted.has(option.value);
  }
}

function presetOption(value) {
  return Array.from(presetSelect.options).some((option) => option.value === value && value);
}

function setState(panel, state, text) {
  const section = document.getElementById(`panel-${panel.id}`);
  section.dataset.state = state;
  const status = document.getElementById(`panel-${panel.id}-status`);
  status.textContent = text;
  status.classList.toggle("error", state === "error");
}

async function loadPanel(panel, params, mine) {
  const query = params.toString();
  const csv = document.querySelector(`#panel-${panel.id} .panel-csv`);
  csv.href = `${panel.csvUrl}?${query}`;
  setState(panel, "loading", "Loading…");
  let response;
  try {
    response = await fetch(`${panel.dataUrl}?${query}`, {
      headers: { Accept: "application/json", "X-Dashboard-Panel": `${config.dashboard}/${panel.id}` },
      credentials: "same-origin",
    });
  } catch (error) {
    if (mine === generation) setState(panel, "error", `Network error: ${error.message}`);
    return;
  }
  if (mine !== generation) return;
  const type = response.headers.get("Content-Type") || "";
  if (!type.startsWith("application/json")) {
    setState(panel, "error", "Session expired: reload the page to log in again.");
    return;
  }
  const body = await response.json();
  if (!response.ok) {
    setState(panel, "error", body.error || `HTTP ${response.status}`);
    return;
  }
  const chart = document.getElementById(`panel-${panel.id}-chart`);
  await Plotly.react(chart, body.figure.data, body.figure.layout, PLOT_CONFIG);
  if (!chart.dataset.zoomBound) {
    chart.dataset.zoomBound = "1";
    chart.on("plotly_relayout", onZoom);
  }
  const inspect = document.getElementById(`panel-${panel.id}-inspect`);
  inspect.textContent = JSON.stringify(body.inspect, null, 2);
  const info = body.inspect;
  setState(panel, "ready", `${info.tier} · ${info.buckets} buckets · ${info.server_ms} ms`);
}

/** Fetch and draw every panel in parallel with the view of the current URL. */
async function loadAll() {
  const mine = ++generation;
  const params = viewParams();
  params.delete("refresh");
  await Promise.all(config.panels.map((panel) => loadPanel(panel, params, mine)));
  if (mine === generation) updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

function toIso(plotlyDate) {
  // Plotly gives "YYYY-MM-DD HH:MM:SS.sss" in UTC for epoch-millisecond axes.
  const text = String(plotlyDate).replace(" ", "T");
  const moment = new Date(/Z$|[+-]\d\d:\d\d$/.test(text) ? text : `${text}Z`);
  return moment.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A zoom on any time chart narrows the range of the whole dashboard. */
function onZoom(event) {
  const lo = event["xaxis.range[0]"] ?? (event["xaxis.range"] || [])[0];
  const hi = event["xaxis.range[1]"] ?? (event["xaxis.range"] || [])[1];
  if (lo === undefined || hi === undefined) return;
  const from = toIso(lo);
  const to = toIso(hi);
  if (from >= to) return;
  fromInput.value = from;
  toInput.value = to;
  presetSelect.value = "";
  writeUrl(paramsFromControls(), true);
  loadAll();
}

function scheduleRefresh() {
  if (refreshTimer) window.clearInterval(refreshTimer);
  refreshTimer = null;
  const every = REFRESH_MS[refreshSelect.value] || 0;
  if (every) refreshTimer = window.setInterval(loadAll, every);
}

function applyControls(push) {
  writeUrl(paramsFromControls(), push);
  scheduleRefresh();
  loadAll();
}

/** Fill each variable's dropdown with the tag's values from the catalog, keeping the selection. */
async function loadVariableOptions(variable) {
  const select = document.getElementById(variable.param);
  const url = new URL(config.catalogUrl, window.location.origin);
  url.search = new URLSearchParams({ project: config.project, metric: variable.metric, key: variable.tag, limit: "1000" });
  let body;
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    body = await response.json();
    if (!response.ok) {
      select.title = body.error || `HTTP ${response.status}`;
      return;
    }
  } catch (error) {
    select.title = `could not load values: ${error.message}`;
    return;
  }
  const chosen = new Set(Array.from(select.selectedOptions, (option) => option.value));
  const present = new Set(Array.from(select.options, (option) => option.value));
  for (const entry of body.values || []) {
    if (present.has(entry.name)) continue;
    const option = new Option(entry.name, entry.name, false, chosen.has(entry.name));
    select.add(option);
  }
  select.dataset.loaded = "1";
}

presetSelect.addEventListener("change", () => {
  if (!presetSelect.value) return;
  fromInput.value = presetSelect.value;
  toInput.value = "now";
  applyControls(true);
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  presetSelect.value = toInput.value.trim() === "now" && presetOption(fromInput.value.trim()) ? fromInput.value.trim() : "";
  applyControls(true);
});
refreshSelect.addEventListener("change", () => applyControls(false));
for (const variable of config.variables) {
  document.getElementById(variable.param).addEventListener("change", () => applyControls(true));
}
for (const button of document.querySelectorAll(".panel-inspect-button")) {
  button.addEventListener("click", () => {
    const inspect = document.getElementById(`panel-${button.dataset.panelId}-inspect`);
    inspect.hidden = !inspect.hidden;
    button.setAttribute("aria-expanded", String(!inspect.hidden));
  });
}
window.addEventListener("popstate", () => {
  controlsFromUrl();
  scheduleRefresh();
  loadAll();
});

config.variables.forEach(loadVariableOptions);
scheduleRefresh();
loadAll();
