#!/usr/bin/env bash
# The whole suite, in the order that fails fastest: lint, format, types, layers, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> ruff"
ruff check .
ruff format --check .
echo "==> mypy"
mypy .
echo "==> import-linter (the layers in .importlinter)"
lint-imports
echo "==> pytest (staging settings: silk profiling)"
pytest -q --ds=analytics.settings.staging_test tests/profiling
echo "==> pytest"
exec pytest -m "not slow" "$@"
