"""What the browser tests read off the pages: panel states, drawn SVG, figures, screenshots."""

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

# Per panel: how much of its Plotly SVG holds data, by the elements Plotly draws per kind.
_MEASURE_JS = """
(section) => {
  const plot = section.querySelector('.js-plotly-plot');
  if (!plot) return {plot: false};
  const all = (selector) => Array.from(plot.querySelectorAll(selector));
  const drawn = (path, min) => (path.getAttribute('d') || '').length > min;
  return {
    plot: true,
    traces: all('g.trace').length,
    lines: all('g.scatterlayer g.trace path.js-line').filter((p) => /L/.test(p.getAttribute('d') || '')).length,
    fills: all('g.scatterlayer g.trace path.js-fill').filter((p) => drawn(p, 20)).length,
    bars: all('g.barlayer g.trace g.point path').filter((p) => drawn(p, 8)).length,
    heatmaps: all('g.heatmaplayer g.hm image').length,
    numbers: all('g.indicatorlayer text.number').map((t) => t.textContent),
    cells: all('g.table .column-cell text').map((t) => t.textContent.trim()).filter(Boolean).length,
  };
}
"""

# What each chart kind must show to count as "drawn with data".
_DRAWN: dict[str, Any] = {
    # Lines must have segments: isolated points between gaps draw nothing visible.
    "line": lambda m: m["lines"] >= 1,
    "area": lambda m: m["fills"] >= 1,
    "stacked_bar": lambda m: m["bars"] >= 10,
    # A heatmap is one trace drawn as an image (no g.trace group).
    "heatmap": lambda m: m["heatmaps"] >= 1,
    "single_stat": lambda m: len(m["numbers"]) == 1 and _number(m["numbers"][0]) is not None,
    "table": lambda m: m["cells"] >= 4,
}


def _number(text: str) -> float | None:
    """Read Plotly's indicator text (it may carry SI suffixes or a unit) as a number."""
    cleaned = text.replace("\u2212", "-").replace(",", "").strip()
    digits = "".join(ch for ch in cleaned if ch.isdigit() or ch in ".-")
    try:
        return float(digits)
    except ValueError:
        return None


def wait_for_panels(page: Page, count: int) -> None:
    """Wait until `count` panels have answered, then fail naming any that show an error."""
    page.wait_for_function(
        """(n) => {
            const panels = document.querySelectorAll('section.panel');
            const done = document.querySelectorAll(
                'section.panel[data-state=ready], section.panel[data-state=error]');
            return panels.length === n && done.length === n;
        }""",
        arg=count,
    )
    errors = page.eval_on_selector_all(
        "section.panel[data-state=error]",
        "(sections) => sections.map((s) => s.querySelector('.panel-title').textContent + ': ' +"
        " s.querySelector('.panel-status').textContent)",
    )
    assert not errors, f"panels in error: {errors}"


def panel_section(page: Page, title: str) -> Any:
    """Return the panel section whose title is `title`."""
    return page.locator("section.panel", has=page.locator(".panel-title", has_text=title)).first


def panel_measures(page: Page) -> list[dict[str, Any]]:
    """Return, for every panel, its kind, title and what its SVG holds."""
    measures = []
    for section in page.locator("section.panel").all():
        measure = section.evaluate(_MEASURE_JS)
        measure["kind"] = section.get_attribute("data-kind")
        measure["title"] = section.locator(".panel-title").inner_text()
        measures.append(measure)
    return measures


def is_drawn(measure: dict[str, Any]) -> bool:
    """Tell whether a panel's SVG shows its kind's data marks (lines, bars, cells, a number)."""
    return bool(measure["plot"] and _DRAWN[measure["kind"]](measure))


def drawn_figure(page: Page, title: str) -> list[dict[str, Any]]:
    """Return the traces Plotly holds for the panel `title` (name, x, y, z, value)."""
    section = panel_section(page, title)
    result: list[dict[str, Any]] = section.locator(".js-plotly-plot").evaluate(
        """(plot) => plot.data.map((t) => ({name: t.name ?? null, x: t.x ?? null, y: t.y ?? null,
             z: t.z ?? null, value: t.value ?? null, type: t.type}))"""
    )
    return result


def single_stat(page: Page, title: str) -> float:
    """Return the value the single-stat panel `title` draws (its indicator trace's value)."""
    values = [t["value"] for t in drawn_figure(page, title) if t["type"] == "indicator"]
    assert len(values) == 1, f"{title}: {values}"
    assert isinstance(values[0], int | float), f"{title}: {values}"
    return float(values[0])


def screenshot(page: Page, folder: Path, name: str) -> Path:
    """Save a full-page screenshot as <folder>/<name>.png and return its path."""
    path = folder / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 0
    return path
