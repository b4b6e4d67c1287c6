// Dashboard editor: layout on a gridstack 12-column grid, the panel editor with a live
// preview, the settings dialog, save with versions, and the 409 conflict offer.
// The working document lives here until Save; the server validates everything with
// the models' own checks and names the field at fault. No build step.

const config = JSON.parse(document.getElementById("editor-config").textContent);
const Plotly = window.Plotly;
// The UMD bundle exposes the module; its GridStack class is a property of it.
const GridStack = window.GridStack.GridStack || window.GridStack;
const PLOT_CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
const PREVIEW_DEBOUNCE_MS = 350;
const SEARCH_DEBOUNCE_MS = 200;

const $ = (id) => document.getElementById(id);

let doc = structuredClone(config.document);
let baseVersion = config.version;
let dirty = false;
let nextKey = 1;
// Panels by a key of this page (new panels have no id until saved).
let panels = new Map();

function headers() {
  return { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": config.csrf };
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: headers(), credentials: "same-origin", body: JSON.stringify(body),
  });
  const type = response.headers.get("Content-Type") || "";
  const data = type.startsWith("application/json") ? await response.json() : { error: await response.text() };
  return { status: response.status, ok: response.ok, body: data };
}

async function getJson(url, params) {
  const target = new URL(url, window.location.origin);
  target.search = new URLSearchParams(params);
  const response = await fetch(target, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) return null;
  return response.json();
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => fn(...args), ms);
  };
}

function setDirty(value) {
  dirty = value;
  $("save-status").textContent = value ? "Unsaved changes" : $("save-status").textContent.replace("Unsaved changes", "");
  document.body.dataset.dirty = value ? "1" : "0";
}

// --- The view range of the editor's charts ------------------------------------------------

function fillRange() {
  const select = $("edit-range");
  const presets = [["Dashboard default", ""], ...config.choices.presets];
  for (const [label, value] of presets) select.add(new Option(label, value));
}

function viewParams() {
  const params = new URLSearchParams();
  const chosen = $("edit-range").value;
  params.set("from", chosen || doc.default_from);
  params.set("to", chosen ? "now" : doc.default_to);
  return params.toString();
}

// --- The grid ----------------------------------------------------------------------------

let grid = null;

// Gridstack gives a widget its size after the widget is added, and a new one on every resize,
// so a chart may first be drawn into a box that is still growing (a sliver with clipped
// labels). Each chart is redrawn at its box's size whenever that size changes.
const chartBoxes = new ResizeObserver((entries) => {
  for (const { target } of entries) {
    if (target.data && target.offsetWidth > 0 && target.offsetHeight > 0) Plotly.Plots.resize(target);
  }
});

function panelContent(key, panel) {
  const content = document.createElement("section");
  content.className = "grid-stack-item-content panel card";
  content.id = `edit-panel-${key}`;
  content.dataset.kind = panel.kind;
  content.dataset.state = "loading";
  content.innerHTML = `
    <header class="panel-header">
      <h2 class="panel-title"></h2>
      <div class="panel-actions">
        <button type="button" class="panel-edit">Edit</button>
        <button type="button" class="panel-remove">Remove</button>
      </div>
    </header>
    <div class="panel-status">Loading…</div>
    <div class="panel-chart"></div>`;
  content.querySelector(".panel-title").textContent = panel.title;
  content.querySelector(".panel-edit").addEventListener("click", () => openPanelEditor(key));
  content.querySelector(".panel-remove").addEventListener("click", () => removePanel(key));
  chartBoxes.observe(content.querySelector(".panel-chart"));
  return content;
}

function addWidget(key, panel) {
  const item = document.createElement("div");
  item.className = "grid-stack-item";
  item.setAttribute("gs-id", String(key));
  item.setAttribute("gs-x", panel.x);
  item.setAttribute("gs-y", panel.y);
  item.setAttribute("gs-w", panel.width);
  item.setAttribute("gs-h", panel.height);
  item.dataset.key = String(key);
  item.appendChild(panelContent(key, panel));
  $("edit-grid").appendChild(item);
  grid.makeWidget(item);
  drawPanel(key);
}

function renderGrid() {
  chartBoxes.disconnect();
  if (grid) grid.removeAll(true);
  panels = new Map();
  for (const panel of doc.panels) panels.set(nextKey++, panel);
  grid.batchUpdate();
  for (const [key, panel] of panels) addWidget(key, panel);
  grid.batchUpdate(false);
  $("no-panels-hint").hidden = panels.size > 0;
}

function syncDocPanels() {
  // Grid order (top to bottom, left to right), as the dashboard page lists them.
  doc.panels = Array.from(panels.values()).sort((a, b) => a.y - b.y || a.x - b.x);
}

function onLayoutChange(_event, items) {
  for (const item of items || []) {
    const panel = panels.get(Number(item.id));
    if (!panel) continue;
    if (panel.x === item.x && panel.y === item.y && panel.width === item.w && panel.height === item.h) continue;
    Object.assign(panel, { x: item.x, y: item.y, width: item.w, height: item.h });
    setDirty(true);
  }
  syncDocPanels();
}

async function drawPanel(key) {
  const panel = panels.get(key);
  const section = $(`edit-panel-${key}`);
  if (!panel || !section) return;
  section.dataset.state = "loading";
  const status = section.querySelector(".panel-status");
  const { ok, body } = await postJson(config.urls.preview, {
    panel: stripId(panel), variables: doc.variables, params: viewParams(),
  });
  if (!ok) {
    section.dataset.state = "error";
    status.textContent = body.error || "could not draw";
    status.classList.add("error");
    return;
  }
  status.classList.remove("error");
  const info = body.inspect;
  status.textContent = `${info.tier} · ${info.buckets} buckets · ${info.server_ms} ms`;
  await Plotly.react(section.querySelector(".panel-chart"), body.figure.data, body.figure.layout, PLOT_CONFIG);
  section.dataset.state = "ready";
}

function stripId(panel) {
  const copy = { ...panel };
  delete copy.id;
  return copy;
}

function removePanel(key) {
  const item = document.querySelector(`.grid-stack-item[gs-id="${key}"]`);
  if (item) {
    chartBoxes.unobserve(item.querySelector(".panel-chart"));
    grid.removeWidget(item, true);
  }
  panels.delete(key);
  syncDocPanels();
  setDirty(true);
  $("no-panels-hint").hidden = panels.size > 0;
}

function redrawAll() {
  for (const key of panels.keys()) drawPanel(key);
}

// --- The panel editor ----------------------------------------------------------------------

const FIELDS = ["title", "metric", "agg", "group_by", "limit", "bucket", "fill", "compare", "kind", "unit"];
let editingKey = null; // null: a new panel
let draft = null;
let previewRun = 0;
const keyValues = new Map(); // `metric\0key\0search` -> [values] from the catalog

function fillSelect(select, values) {
  select.innerHTML = "";
  for (const value of values) select.add(new Option(value, value));
}

function parseFilter(text) {
  const bang = text.indexOf("!=");
  const colon = text.indexOf(":");
  let key; let raw; let op;
  if (bang !== -1 && (colon === -1 || bang < colon)) {
    key = text.slice(0, bang); raw = text.slice(bang + 2); op = "!=";
  } else {
    key = text.slice(0, Math.max(colon, 0)); raw = text.slice(colon + 1); op = "=";
  }
  if (op === "=" && raw.startsWith("in(") && raw.endsWith(")")) {
    return { key, op: "in", value: raw.slice(3, -1) };
  }
  return { key, op, value: raw };
}

function filterText(row) {
  const key = row.querySelector(".filter-key").value.trim();
  const op = row.querySelector(".filter-op").value;
  const value = row.querySelector(".filter-value").value.trim();
  if (!key && !value) return null;
  if (op === "in") return `${key}:in(${value})`;
  return op === "!=" ? `${key}!=${value}` : `${key}:${value}`;
}

function valueListId(index) {
  return `pe-values-${index}`;
}

let filterRows = 0;
// The catalog's tag keys of the draft's metric: the filter rows' key choices and group by.
let catalogKeys = [];
const VALUE_LIMIT = 200;

/** Offer the catalog's keys in a filter row; a saved key the catalog lacks stays, marked. */
function fillKeySelect(select, chosen) {
  select.innerHTML = "";
  select.add(new Option(catalogKeys.length ? "(tag key)" : "(pick a metric first)", ""));
  for (const name of catalogKeys) select.add(new Option(name, name));
  if (chosen && !catalogKeys.includes(chosen)) select.add(new Option(`${chosen} (not in the catalog)`, chosen));
  select.value = chosen || "";
}

function addFilterRow(filter) {
  const index = filterRows++;
  const row = document.createElement("div");
  row.className = "filter-row";
  row.innerHTML = `
    <select class="filter-key" aria-label="tag key"></select>
    <select class="filter-op" aria-label="operator"><option value="=">=</option><option value="!=">!=</option><option value="in">in</option></select>
    <input class="filter-value" placeholder="value or $variable (in: a,b)" aria-label="value">
    <datalist></datalist>
    <button type="button" class="filter-remove" aria-label="remove filter">×</button>`;
  const list = row.querySelector("datalist");
  list.id = valueListId(index);
  const keySelect = row.querySelector(".filter-key");
  const valueInput = row.querySelector(".filter-value");
  valueInput.setAttribute("list", list.id);
  fillKeySelect(keySelect, filter ? filter.key : "");
  if (filter) {
    row.querySelector(".filter-op").value = filter.op;
    valueInput.value = filter.value;
  }
  row.querySelector(".filter-remove").addEventListener("click", () => {
    row.remove();
    onDraftChange();
  });
  for (const element of row.querySelectorAll("input, select")) {
    element.addEventListener("input", onDraftChange);
    element.addEventListener("change", onDraftChange);
  }
  keySelect.addEventListener("change", () => fillValueList(row));
  row.querySelector(".filter-op").addEventListener("change", () => fillValueList(row));
  // `in` completes the value after the last comma; a key with more values than one
  // answer holds is searched as the text grows.
  valueInput.addEventListener("input", () => searchValues(row));
  $("pe-filters").appendChild(row);
  fillValueList(row);
  return row;
}

async function catalogValues(metric, key, search) {
  const cacheKey = `${metric}\u0000${key}\u0000${search}`;
  if (!keyValues.has(cacheKey)) {
    const body = await getJson(config.urls.tagValues, {
      project: config.project, metric, key, search, limit: String(VALUE_LIMIT),
    });
    keyValues.set(cacheKey, body ? body.values.map((entry) => entry.name) : []);
  }
  return keyValues.get(cacheKey);
}

/** Fill a row's suggestions: the dashboard's variables (for = and !=) and the key's values
 *  from the catalog; for `in`, each suggestion is the list typed so far plus one more value. */
async function fillValueList(row) {
  const list = row.querySelector("datalist");
  const key = row.querySelector(".filter-key").value;
  const op = row.querySelector(".filter-op").value;
  const typed = row.querySelector(".filter-value").value;
  const head = op === "in" && typed.includes(",") ? typed.slice(0, typed.lastIndexOf(",") + 1) : "";
  const fragment = (op === "in" ? typed.slice(head.length) : typed).trim();
  let values = [];
  const metric = draft ? draft.metric : "";
  if (key && metric) {
    values = await catalogValues(metric, key, "");
    // The first answer was cut at the limit: ask the catalog for what is being typed.
    if (values.length >= VALUE_LIMIT && fragment && !fragment.startsWith("$")) {
      values = await catalogValues(metric, key, fragment);
    }
  }
  if (row.querySelector(".filter-key").value !== key || row.querySelector(".filter-op").value !== op) return;
  list.innerHTML = "";
  if (op !== "in") {
    // Dashboard variables are offered as values: `$region` follows the variable's choice.
    for (const variable of doc.variables || []) {
      list.appendChild(new Option(`variable ${variable.label || variable.name} (${variable.tag})`, `$${variable.name}`));
    }
    for (const value of values) list.appendChild(new Option(value, value));
    return;
  }
  const chosen = new Set(head.split(",").map((value) => value.trim()).filter(Boolean));
  for (const value of values) if (!chosen.has(value)) list.appendChild(new Option(value, `${head}${value}`));
}

const searchValues = debounce((row) => fillValueList(row), SEARCH_DEBOUNCE_MS);

async function loadTagKeys(metric) {
  keyValues.clear();
  const groupBy = $("pe-group-by");
  const chosen = draft ? draft.group_by : "";
  const keys = metric ? await getJson(config.urls.tagKeys, { project: config.project, metric }) : null;
  catalogKeys = keys ? keys.keys.map((entry) => entry.name) : [];
  groupBy.innerHTML = "";
  groupBy.add(new Option("(none)", ""));
  for (const name of catalogKeys) groupBy.add(new Option(name, name));
  if (chosen && !catalogKeys.includes(chosen)) groupBy.add(new Option(chosen, chosen));
  groupBy.value = chosen || "";
  for (const row of $("pe-filters").querySelectorAll(".filter-row")) {
    fillKeySelect(row.querySelector(".filter-key"), row.querySelector(".filter-key").value);
    fillValueList(row);
  }
}

const searchMetrics = debounce(async (text) => {
  const body = await getJson(config.urls.metrics, { project: config.project, search: text, limit: "50" });
  const list = $("pe-metric-list");
  list.innerHTML = "";
  for (const entry of body ? body.metrics : []) list.appendChild(new Option(entry.name, entry.name));
  list.dataset.search = text;
}, SEARCH_DEBOUNCE_MS);

function readForm() {
  const panel = { ...draft };
  panel.title = $("pe-title").value;
  panel.metric = $("pe-metric").value.trim();
  panel.agg = $("pe-agg").value;
  panel.group_by = $("pe-group-by").value;
  const limit = $("pe-limit").value;
  panel.limit = /^\d+$/.test(limit) ? Number(limit) : limit;
  panel.bucket = $("pe-bucket").value.trim();
  panel.fill = $("pe-fill").value;
  panel.compare = $("pe-compare").checked;
  panel.kind = $("pe-kind").value;
  panel.unit = $("pe-unit").value;
  panel.filters = Array.from($("pe-filters").querySelectorAll(".filter-row"), filterText).filter((text) => text !== null);
  return panel;
}

function writeForm(panel) {
  $("pe-title").value = panel.title;
  $("pe-metric").value = panel.metric;
  $("pe-agg").value = panel.agg;
  $("pe-limit").value = panel.limit;
  $("pe-bucket").value = panel.bucket;
  $("pe-fill").value = panel.fill;
  $("pe-compare").checked = panel.compare;
  $("pe-kind").value = panel.kind;
  $("pe-unit").value = panel.unit;
  $("pe-filters").innerHTML = "";
  for (const text of panel.filters) addFilterRow(parseFilter(text));
}

function clearErrors(prefix) {
  for (const span of document.querySelectorAll(`[id^="${prefix}-"][id$="-error"], #${prefix}-error`)) span.textContent = "";
  for (const element of document.querySelectorAll(".invalid")) element.classList.remove("invalid");
}

/** Show each refused field next to its input; return whether there were errors. */
function showErrors(prefix, detail, strip) {
  clearErrors(prefix);
  for (const { field, error } of detail || []) {
    const name = field.replace(strip, "").replace(/\[\d+\].*$/, "");
    const span = $(`${prefix}-${name}-error`) || $(`${prefix}-error`);
    span.textContent = span.textContent ? `${span.textContent} ${field}: ${error}` : `${field}: ${error}`;
    const input = document.querySelector(`#${prefix}-form [data-field="${name}"]`);
    if (input) input.classList.add("invalid");
  }
  return Boolean(detail && detail.length);
}

async function preview() {
  const mine = ++previewRun;
  draft = readForm();
  const status = $("pe-preview-status");
  if (!draft.metric) {
    showErrors("pe", [{ field: "panel.metric", error: "choose a metric from the catalog" }], /^panel\./);
    status.textContent = "Pick a metric to see a preview.";
    return false;
  }
  status.textContent = "Loading preview…";
  const { ok, body } = await postJson(config.urls.preview, { panel: draft, variables: doc.variables, params: viewParams() });
  if (mine !== previewRun) return false;
  const chart = $("pe-preview-chart");
  if (!ok) {
    showErrors("pe", body.detail && body.detail.length ? body.detail : [{ field: "panel", error: body.error }], /^panel\./);
    status.textContent = "Not drawn: fix the fields marked in red.";
    $("panel-editor").dataset.state = "invalid";
    return false;
  }
  clearErrors("pe");
  await Plotly.react(chart, body.figure.data, body.figure.layout, PLOT_CONFIG);
  const info = body.inspect;
  status.textContent = `${info.tier} · ${info.buckets} buckets · ${info.server_ms} ms server time · bucket ${info.query.bucket}`;
  $("pe-preview-inspect").textContent = JSON.stringify(info.query, null, 2);
  $("panel-editor").dataset.state = "ready";
  return true;
}

const schedulePreview = debounce(() => {
  if (!$("panel-editor").hidden) preview();
}, PREVIEW_DEBOUNCE_MS);

function onDraftChange() {
  $("panel-editor").dataset.state = "pending";
  schedulePreview();
}

function newPanel() {
  const bottom = Math.max(0, ...Array.from(panels.values(), (p) => p.y + p.height));
  return {
    title: "New panel", kind: "line", metric: "", agg: "avg", filters: [], group_by: "", limit: 10,
    bucket: "auto", fill: "none", compare: false, unit: "", x: 0, y: bottom, width: 6, height: 4,
  };
}

async function openPanelEditor(key) {
  editingKey = key;
  draft = structuredClone(key === null ? newPanel() : panels.get(key));
  $("pe-heading").textContent = key === null ? "Add panel" : `Edit panel: ${draft.title}`;
  clearErrors("pe");
  $("pe-preview-inspect").textContent = "";
  Plotly.purge($("pe-preview-chart"));
  writeForm(draft);
  $("panel-editor").hidden = false;
  $("panel-editor").dataset.state = "pending";
  $("pe-metric").focus();
  await loadTagKeys(draft.metric);
  if (draft.metric) preview();
}

async function applyPanel() {
  // The newest input must have been checked by the server before it is accepted.
  const valid = await preview();
  if (!valid) return;
  const panel = readForm();
  if (editingKey === null) {
    const key = nextKey++;
    panels.set(key, panel);
    addWidget(key, panel);
  } else {
    panels.set(editingKey, panel);
    const section = $(`edit-panel-${editingKey}`);
    section.querySelector(".panel-title").textContent = panel.title;
    section.dataset.kind = panel.kind;
    drawPanel(editingKey);
  }
  syncDocPanels();
  setDirty(true);
  $("no-panels-hint").hidden = panels.size > 0;
  closePanelEditor();
}

function closePanelEditor() {
  previewRun++;
  $("panel-editor").hidden = true;
  editingKey = null;
  draft = null;
}

// --- Settings ------------------------------------------------------------------------------

let variableRows = 0;

function addVariableRow(variable) {
  const row = document.createElement("div");
  row.className = "variable-row";
  row.innerHTML = `
    <input class="var-name" placeholder="name" aria-label="variable name">
    <input class="var-label" placeholder="label" aria-label="label">
    <input class="var-metric" placeholder="metric" list="pe-metric-list" aria-label="metric">
    <input class="var-tag" placeholder="tag key" aria-label="tag key">
    <datalist></datalist>
    <label><input type="checkbox" class="var-multi"> multi</label>
    <input class="var-default" placeholder="default values" aria-label="default values">
    <button type="button" class="var-remove" aria-label="remove variable">×</button>`;
  const v = variable || { name: "", metric: "", tag: "", multi: true, default: [] };
  row.querySelector(".var-name").value = v.name || "";
  row.querySelector(".var-label").value = v.label || "";
  row.querySelector(".var-metric").value = v.metric || "";
  row.querySelector(".var-tag").value = v.tag || "";
  row.querySelector(".var-multi").checked = v.multi !== false;
  row.querySelector(".var-default").value = (v.default || []).join(",");
  row.querySelector(".var-metric").addEventListener("input", (event) => searchMetrics(event.target.value));
  // The tag key is offered from the catalog's keys of the variable's metric.
  const tagList = row.querySelector("datalist");
  tagList.id = `st-tag-keys-${variableRows++}`;
  row.querySelector(".var-tag").setAttribute("list", tagList.id);
  const offerKeys = async () => {
    const metric = row.querySelector(".var-metric").value.trim();
    const body = metric ? await getJson(config.urls.tagKeys, { project: config.project, metric }) : null;
    tagList.innerHTML = "";
    for (const entry of body ? body.keys : []) tagList.appendChild(new Option(entry.name, entry.name));
  };
  row.querySelector(".var-metric").addEventListener("change", offerKeys);
  offerKeys();
  row.querySelector(".var-remove").addEventListener("click", () => row.remove());
  $("st-variables").appendChild(row);
}

function readVariables() {
  return Array.from($("st-variables").querySelectorAll(".variable-row"), (row) => {
    const variable = {
      name: row.querySelector(".var-name").value.trim(),
      metric: row.querySelector(".var-metric").value.trim(),
      tag: row.querySelector(".var-tag").value.trim(),
      multi: row.querySelector(".var-multi").checked,
      default: row.querySelector(".var-default").value.split(",").map((v) => v.trim()).filter(Boolean),
    };
    const label = row.querySelector(".var-label").value.trim();
    if (label) variable.label = label;
    return variable;
  });
}

function openSettings() {
  $("st-title").value = doc.title;
  $("st-description").value = doc.description;
  $("st-from").value = doc.default_from;
  $("st-to").value = doc.default_to;
  $("st-refresh").value = doc.refresh;
  $("st-variables").innerHTML = "";
  for (const variable of doc.variables || []) addVariableRow(variable);
  clearErrors("st");
  $("settings-editor").hidden = false;
}

async function applySettings() {
  const candidate = {
    ...doc,
    title: $("st-title").value,
    description: $("st-description").value,
    default_from: $("st-from").value.trim(),
    default_to: $("st-to").value.trim(),
    refresh: $("st-refresh").value,
    variables: readVariables(),
  };
  const { ok, body } = await postJson(config.urls.save, { document: candidate, base_version: baseVersion, dry_run: true });
  if (!ok) {
    showErrors("st", body.detail && body.detail.length ? body.detail : [{ field: "document", error: body.error }], /^$/);
    return;
  }
  doc = candidate;
  syncDocPanels();
  $("dashboard-title").textContent = doc.title;
  $("settings-editor").hidden = true;
  setDirty(true);
  redrawAll();
}

// --- Save, conflicts ----------------------------------------------------------------------

function documentToSave() {
  syncDocPanels();
  return doc;
}

async function save() {
  $("save-error").hidden = true;
  $("save-status").textContent = "Saving…";
  const { status, ok, body } = await postJson(config.urls.save, {
    document: documentToSave(), base_version: baseVersion, message: $("save-message").value,
  });
  if (status === 409) {
    $("conflict-text").textContent = body.error;
    $("conflict-banner").hidden = false;
    $("save-status").textContent = "Not saved";
    return;
  }
  if (!ok) {
    const detail = (body.detail || []).map((d) => `${d.field}: ${d.error}`).join("; ");
    $("save-error").textContent = `Not saved: ${detail || body.error}`;
    $("save-error").hidden = false;
    $("save-status").textContent = "Not saved";
    return;
  }
  baseVersion = body.version;
  doc = body.document;
  $("base-version").textContent = String(baseVersion);
  $("save-message").value = "";
  renderGrid();
  setDirty(false);
  $("save-status").textContent = `Saved version ${baseVersion}`;
}

async function saveAsCopy() {
  const { ok, body } = await postJson(config.urls.create, { title: `${doc.title} (copy)`.slice(0, 200), document: documentToSave() });
  if (!ok) {
    $("save-error").textContent = `Copy not saved: ${body.error}`;
    $("save-error").hidden = false;
    return;
  }
  setDirty(false);
  window.location.assign(body.url);
}

function discardChanges() {
  if (dirty && !window.confirm("Drop every change since the last save?")) return;
  doc = structuredClone(config.document);
  setDirty(false);
  window.location.reload();
}

// --- Wiring ---------------------------------------------------------------------------------

function init() {
  fillRange();
  fillSelect($("pe-agg"), config.choices.aggs);
  fillSelect($("pe-fill"), config.choices.fills);
  fillSelect($("pe-kind"), config.choices.kinds);
  fillSelect($("st-refresh"), config.choices.refresh);
  grid = GridStack.init(
    { column: config.choices.columns, cellHeight: 80, margin: 6, float: false, maxRow: 0, handle: ".panel-header" },
    $("edit-grid"),
  );
  grid.on("change", onLayoutChange);
  renderGrid();

  $("add-panel").addEventListener("click", () => openPanelEditor(null));
  $("open-settings").addEventListener("click", openSettings);
  $("edit-range").addEventListener("change", redrawAll);
  $("pe-apply").addEventListener("click", applyPanel);
  $("pe-discard").addEventListener("click", closePanelEditor);
  $("pe-add-filter").addEventListener("click", () => addFilterRow(null));
  $("pe-metric").addEventListener("input", (event) => searchMetrics(event.target.value));
  $("pe-metric").addEventListener("change", () => {
    draft = readForm();
    loadTagKeys(draft.metric);
  });
  for (const element of document.querySelectorAll("#pe-form [data-field]")) {
    element.addEventListener("input", onDraftChange);
    element.addEventListener("change", onDraftChange);
  }
  $("st-apply").addEventListener("click", applySettings);
  $("st-discard").addEventListener("click", () => { $("settings-editor").hidden = true; });
  $("st-add-variable").addEventListener("click", () => addVariableRow(null));
  $("save-dashboard").addEventListener("click", save);
  $("discard-changes").addEventListener("click", discardChanges);
  $("conflict-reload").addEventListener("click", () => { setDirty(false); window.location.reload(); });
  $("conflict-copy").addEventListener("click", saveAsCopy);
  $("done-editing").addEventListener("click", (event) => {
    if (dirty && !window.confirm("You have unsaved changes. Leave the editor and lose them?")) event.preventDefault();
    else setDirty(false);
  });
  // Leaving with unsaved changes (reload, back, closing the tab) asks first.
  window.addEventListener("beforeunload", (event) => {
    if (!dirty) return;
    event.preventDefault();
    event.returnValue = "";
  });
  searchMetrics("");
  document.body.dataset.editorReady = "1";
}

init();
