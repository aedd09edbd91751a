"""The docs site builds strictly, and its generated references list, with a description, every configuration key,
CLI command, metric and HTTP route (datasette's docs test, on pages generated from the code).

The strict build (`sphinx-build -W --keep-going -n`, as `make docs` runs it) happens once per module into a
temporary directory; the reference pages of that build are then read back as text.
"""

from __future__ import annotations

import html
import importlib
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click import Command, Group
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aqnet.cli import cli
from aqnet.config import Settings
from aqnet.metrics import Metrics

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def _extension() -> ModuleType:
    """docs/_ext/aqnet_reference.py: where the app factories are found (one function, `http_apps`)."""
    if str(DOCS / "_ext") not in sys.path:
        sys.path.insert(0, str(DOCS / "_ext"))
    return importlib.import_module("aqnet_reference")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs-html")
    build = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
                            str(DOCS), str(out)], capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, f"the strict docs build failed:\n{build.stdout}\n{build.stderr}"
    return out


def _text(site: Path, page: str) -> str:
    """A built page as text: tags removed, entities decoded, whitespace collapsed."""
    raw = (site / page).read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.DOTALL)
    raw = re.sub(r"</?span\b[^>]*>", "", raw)  # inline: highlighted code is split into spans
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


# --- what the code has -----------------------------------------------------------------------------------------


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _keys(ann, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    """Every key of the settings — the leaves of nested sections, and the fields of the models inside lists and maps
    (alert channels, stations, microsensors) — with its description. A section itself is no key."""
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            out.append((prefix + name, field.description))
        for inner in _models(ann):  # named by the model, e.g. alerts.channels[WebhookChannel].url
            step = "." if isinstance(ann, type) else f"[{inner.__name__}]."
            out += _fields(inner, f"{prefix}{name}{step}")
    return list(dict.fromkeys(out))


def _models(ann: object) -> list[type[BaseModel]]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return [m for arg in getattr(ann, "__args__", ()) for m in _models(arg)]


def _metrics() -> dict[str, str]:
    """Exposed name (counters with `_total`) → documentation."""
    registry = CollectorRegistry()
    Metrics.create(registry)
    return {(m.name + "_total" if m.type == "counter" else m.name): m.documentation for m in registry.collect()}


def _commands(group: Group, prefix: str = "aqnet") -> dict[str, Command]:
    out: dict[str, Command] = {}
    for name, cmd in group.commands.items():
        out[f"{prefix} {name}"] = cmd
        if isinstance(cmd, Group):
            out.update(_commands(cmd, f"{prefix} {name}"))
    return out


def _routes() -> list[tuple[str, str, str, dict[str, object]]]:
    """(listener, METHOD, path, operation) of every route in the listeners' OpenAPI schemas."""
    return [(listener, method.upper(), path, op)
            for listener, app in _extension().http_apps().items()
            for path, ops in app.openapi()["paths"].items() for method, op in ops.items()]


# --- the build ---------------------------------------------------------------------------------------------------


def test_docs_build_strictly(site: Path) -> None:
    assert (site / "index.html").is_file()


def test_readme_is_short_and_points_into_the_docs() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.encode()) < 8 * 1024
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / target).is_file(), f"README links to {target}, which does not exist"


# --- every item is listed on its generated page ------------------------------------------------------------------


def test_every_config_key_is_on_the_configuration_page(site: Path) -> None:
    page = _text(site, "reference/config.html")
    keys = _keys(Settings)
    assert keys
    assert not [k for k in keys if k not in page]


def test_every_metric_is_on_the_metrics_page(site: Path) -> None:
    page = _text(site, "reference/metrics.html")
    names = _metrics()
    assert names
    assert not [n for n in names if n not in page]


def test_every_cli_command_is_on_the_cli_page(site: Path) -> None:
    page = _text(site, "reference/cli.html")
    commands = _commands(cli)
    assert commands
    assert not [c for c in commands if f"{c} [OPTIONS]" not in page]


def test_every_http_route_is_on_the_http_page(site: Path) -> None:
    page = _text(site, "reference/http.html")
    routes = _routes()
    assert routes
    assert not [(m, p) for _, m, p, _ in routes if f"{m} {p}" not in page]


def test_every_module_is_on_the_module_map(site: Path) -> None:
    page = _text(site, "developers/modules.html")
    files = [p.relative_to(ROOT).as_posix() for package in _extension().PACKAGES
             for p in (ROOT / package).rglob("*.py")]
    assert len(files) > 100
    assert not [f for f in files if f not in page]


# --- every item has a description --------------------------------------------------------------------------------


def test_every_config_key_has_a_description() -> None:
    missing = [key for key, description in _fields(Settings) if not (description or "").strip()]
    assert not missing, f"settings fields without Field(description=...): {missing}"


def test_every_metric_has_a_description() -> None:
    assert not [n for n, doc in _metrics().items() if not doc.strip()]


def test_every_cli_command_has_a_description() -> None:
    assert not [c for c, cmd in _commands(cli).items() if not (cmd.help or cmd.short_help or "").strip()]


def test_every_http_route_has_a_description() -> None:
    missing = [f"{listener}: {m} {p}" for listener, m, p, op in _routes()
               if not str(op.get("description") or "").strip()]
    assert not missing, f"routes whose handler has no docstring (or description=): {missing}"


def test_every_module_says_what_it_is() -> None:
    """The module map's description column: each module's docstring opens by naming what it is."""
    missing = [m.path for m in _extension().module_entries() if not m.summary]
    assert not missing, f"modules without a docstring: {missing}"
