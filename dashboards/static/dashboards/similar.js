// Similar items page: pick examples (items or texts), call POST /api/v1/search, draw results.
// A plain ES module: no build step, no CDN; Plotly comes from the page's own static files.

const app = document.getElementById("similar-app");
const project = app.dataset.project;
const itemsUrl = app.dataset.itemsUrl;
const searchUrl = app.dataset.searchUrl;
const csrfToken = app.querySelector("input[name=csrfmiddlewaretoken]").value;

const el = (id) => document.getElementById(id);
const state = {
  like: [], // {id, title} for items, {text} for example texts
  unlike: [], // {id, title}
  results: [],
  trend: null, // {metric, agg, bucket, start, end, times} of the last answer's sparklines
};

function node(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") element.className = value;
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) element.append(child);
  }
  return element;
}

function withProject(url, params = {}) {
  const query = new URLSearchParams({ ...params, project });
  return `${url}?${query}`;
}

// Turn any API answer into {ok, status, body}. Anything but JSON (a login page after the
// session expired, a proxy's error page) is an error, whatever its status.
async function callApi(url, options = {}) {
  let response;
  try {
    response = await fetch(url, {
      credentials: "same-origin",
      ...options,
      headers: { Accept: "application/json", ...(options.headers || {}) },
    });
  } catch (error) {
    return { ok: false, status: 0, body: { error: `the server could not be reached: ${error}` } };
  }
  const type = response.headers.get("Content-Type") || "";
  if (!type.startsWith("application/json")) {
    const error = response.redirected
      ? "your session has expired: reload the page to log in again"
      : `unexpected answer (${type || "no content type"}) from the server`;
    return { ok: false, status: response.status, body: { error } };
  }
  let body;
  try {
    body = await response.json();
  } catch (error) {
    return { ok: false, status: response.status, body: { error: `unreadable JSON: ${error}` } };
  }
  return { ok: response.ok, status: response.status, body };
}

function showError(status, body) {
  const box = el("search-error");
  box.replaceChildren();
  const message = (body && (body.error || body.detail)) || "the request failed";
  box.append(node("strong", {}, status ? `Error ${status}: ` : "Error: "));
  box.append(typeof message === "string" ? message : JSON.stringify(message));
  // The API names each field at fault: [{"field": "like[1]", "error": "..."}].
  const detail = body && Array.isArray(body.detail) ? body.detail : [];
  const line = (d) => {
    if (d && d.field !== undefined) return `${d.field || "request"}: ${d.error}`;
    return typeof d === "string" ? d : JSON.stringify(d);
  };
  if (detail.length) box.append(node("ul", {}, ...detail.map((d) => node("li", {}, line(d)))));
  box.hidden = false;
}

function clearError() {
  el("search-error").hidden = true;
  el("search-error").replaceChildren();
}

// --- Examples -------------------------------------------------------------------------------

function exampleLabel(example) {
  return example.text !== undefined ? `“${example.text}”` : example.title || example.id;
}

function renderExamples() {
  const chip = (example, list, negative) =>
    node(
      "li",
      {
        class: negative ? "chip negative" : "chip",
        "data-id": example.id ?? "",
        "data-text": example.text ?? "",
      },
      node("span", {}, exampleLabel(example)),
      node(
        "button",
        {
          type: "button",
          title: "remove",
          "aria-label": `remove ${exampleLabel(example)}`,
          onclick: () => {
            list.splice(list.indexOf(example), 1);
            renderExamples();
          },
        },
        "×",
      ),
    );
  el("like-list").replaceChildren(...state.like.map((e) => chip(e, state.like, false)));
  el("unlike-list").replaceChildren(...state.unlike.map((e) => chip(e, state.unlike, true)));
}

function addLike(example) {
  const duplicate = state.like.some((e) =>
    example.text !== undefined ? e.text === example.text : e.id === example.id,
  );
  if (!duplicate) state.like.push(example);
  // An item cannot be liked and unliked at once: the latest choice wins.
  if (example.id !== undefined) state.unlike = state.unlike.filter((e) => e.id !== example.id);
  renderExamples();
}

function addUnlike(example) {
  if (!state.unlike.some((e) => e.id === example.id)) state.unlike.push(example);
  state.like = state.like.filter((e) => e.id !== example.id);
  renderExamples();
}

// --- Item picker ----------------------------------------------------------------------------

let pickerTimer = null;
let pickerSeq = 0;

async function lookUpItems(words) {
  const seq = ++pickerSeq;
  const list = el("item-suggestions");
  if (!words.trim()) {
    list.replaceChildren();
    return;
  }
  const { ok, status, body } = await callApi(withProject(itemsUrl, { q: words, limit: 10 }));
  if (seq !== pickerSeq) return; // a newer query has been typed meanwhile
  if (!ok) {
    showError(status, body);
    return;
  }
  clearError();
  const items = body.items || [];
  if (!items.length) {
    list.replaceChildren(node("li", { class: "muted" }, `no item title contains “${words}”`));
    return;
  }
  list.replaceChildren(
    ...items.map((item) =>
      node(
        "li",
        { class: "suggestion", "data-id": item.external_id },
        node(
          "span",
          {},
          item.title || item.external_id,
          node("span", { class: "muted" }, ` (${item.external_id}${item.embedded ? "" : ", not embedded yet"})`),
        ),
        node(
          "button",
          {
            type: "button",
            class: "use-item",
            onclick: () => {
              addLike({ id: item.external_id, title: item.title });
              list.replaceChildren();
              runSearch();
            },
          },
          "Find similar",
        ),
      ),
    ),
  );
}

el("item-query").addEventListener("input", (event) => {
  clearTimeout(pickerTimer);
  const words = event.target.value;
  pickerTimer = setTimeout(() => lookUpItems(words), 250);
});

el("add-text").addEventListener("click", () => {
  const text = el("example-text").value.trim();
  if (!text) {
    showError(0, { error: "type an example text first" });
    return;
  }
  addLike({ text });
  el("example-text").value = "";
  runSearch();
});

// --- Attribute filters ---------------------------------------------------------------------

function addFilterRow(key = "", value = "") {
  const row = node(
    "div",
    { class: "filter-row" },
    node("input", { type: "text", class: "filter-key", placeholder: "attribute", value: key, "aria-label": "name" }),
    node("span", {}, "="),
    node("input", { type: "text", class: "filter-value", placeholder: "value", value, "aria-label": "value" }),
    node("button", { type: "button", title: "remove filter", onclick: () => row.remove() }, "×"),
  );
  el("filters").append(row);
  return row;
}

el("add-filter").addEventListener("click", () => addFilterRow());

function readFilters() {
  const where = {};
  for (const row of el("filters").querySelectorAll(".filter-row")) {
    const key = row.querySelector(".filter-key").value.trim();
    const value = row.querySelector(".filter-value").value.trim();
    if (key) where[key] = typedAlternatives(value);
  }
  return where;
}

// A typed value matches attributes stored as a string and as the number or boolean it
// reads as, the way the API's `where=key:value` query parameters do.
function typedAlternatives(text) {
  if (text === "true" || text === "false") return [text, text === "true"];
  if (text !== "" && Number.isFinite(Number(text))) return [text, Number(text)];
  return text;
}

// --- Search and results --------------------------------------------------------------------

function searchBody() {
  const body = {
    like: state.like.map((e) => (e.text !== undefined ? { text: e.text } : e.id)),
  };
  // The API checks k and names it when it is wrong; the page only passes it on.
  const k = el("k").value.trim();
  if (k) body.k = /^[0-9]+$/.test(k) ? Number(k) : k;
  if (state.unlike.length) body.unlike = state.unlike.map((e) => e.id);
  const where = readFilters();
  if (Object.keys(where).length) body.where = where;
  const metric = el("trend-metric").value;
  if (metric) {
    body.trend = metric;
    body.range = el("trend-range").value;
  }
  return body;
}

let searchSeq = 0;

async function runSearch() {
  if (!state.like.length) {
    showError(0, { error: "add at least one example: pick an item or type a text" });
    return;
  }
  const seq = ++searchSeq;
  const body = searchBody();
  el("results-status").textContent = "Searching…";
  app.dataset.state = "searching";
  const started = performance.now();
  const answer = await callApi(withProject(searchUrl), {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
    body: JSON.stringify(body),
  });
  if (seq !== searchSeq) return;
  const elapsed = Math.round(performance.now() - started);
  if (!answer.ok) {
    showError(answer.status, answer.body);
    // Results of an earlier query must not pass for this one's.
    state.results = [];
    state.trend = null;
    renderResults();
    el("results-status").textContent = "The search failed.";
    app.dataset.state = "error";
    return;
  }
  clearError();
  state.results = answer.body.results || [];
  state.trend = answer.body.trend || null;
  renderResults();
  const trend = state.trend ? ` · trend: ${state.trend.metric} (${state.trend.agg} per ${state.trend.bucket})` : "";
  el("results-status").textContent = `${state.results.length} result(s) in ${elapsed} ms${trend}`;
  app.dataset.state = "done";
}

function attributeChips(attributes) {
  return Object.entries(attributes || {}).map(([key, value]) =>
    node("span", { class: "attr" }, `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`),
  );
}

// `times` are the bucket starts shared by every result (epoch ms); `values` this item's.
function drawSparkline(target, times, values) {
  if (!values || !values.some((v) => v !== null)) {
    target.append(node("span", { class: "muted sparkline-empty" }, "no data"));
    return;
  }
  window.Plotly.newPlot(
    target,
    [
      {
        x: times.map((t) => new Date(t)),
        y: values,
        type: "scatter",
        mode: "lines",
        line: { width: 1.5 },
        connectgaps: false,
      },
    ],
    {
      width: 160,
      height: 40,
      margin: { l: 0, r: 0, t: 0, b: 0 },
      xaxis: { visible: false },
      yaxis: { visible: false },
      showlegend: false,
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
    },
    { staticPlot: true, displayModeBar: false, responsive: false },
  );
}

function renderResults() {
  const rows = state.results.map((result, index) => {
    const id = result.external_id;
    const spark = node("div", { class: "sparkline" });
    const select = node("input", {
      type: "checkbox",
      class: "select-result",
      "aria-label": `select ${id}`,
      onchange: updateSelection,
    });
    const lessLike = node(
      "button",
      {
        type: "button",
        class: "less-like",
        onclick: () => {
          addUnlike({ id, title: result.title });
          runSearch();
        },
      },
      "Less like this",
    );
    const row = node(
      "tr",
      { class: "result-row", "data-id": id },
      node("td", {}, select),
      node("td", {}, String(index + 1)),
      node("td", {}, node("div", { class: "result-title" }, result.title || id), node("div", { class: "muted" }, id)),
      node("td", { class: "score" }, typeof result.score === "number" ? result.score.toFixed(3) : "–"),
      node("td", {}, ...attributeChips(result.attributes)),
      node("td", {}, spark),
      node("td", {}, lessLike),
    );
    return { row, spark, values: result.trend };
  });
  el("results").querySelector("tbody").replaceChildren(...rows.map((r) => r.row));
  if (state.trend) {
    for (const { spark, values } of rows) drawSparkline(spark, state.trend.times, values);
  }
  updateSelection();
}

function selectedResults() {
  return [...document.querySelectorAll("tr.result-row")]
    .filter((row) => row.querySelector(".select-result").checked)
    .map((row) => ({ id: row.dataset.id, title: row.querySelector(".result-title").textContent }));
}

function updateSelection() {
  el("more-like-these").disabled = selectedResults().length === 0;
}

el("more-like-these").addEventListener("click", () => {
  for (const example of selectedResults()) addLike(example);
  runSearch();
});

el("search").addEventListener("click", () => runSearch());

el("clear").addEventListener("click", () => {
  state.like = [];
  state.unlike = [];
  state.results = [];
  state.trend = null;
  renderExamples();
  renderResults();
  clearError();
  el("results-status").textContent = "Pick an item or type a text to find similar items.";
});

app.dataset.ready = "true";
