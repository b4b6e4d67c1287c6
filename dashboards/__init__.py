"""Dashboards, panels, their pages, and pure functions that turn series into Plotly figures."""
