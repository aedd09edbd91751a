"""Reference pages generated from the code, so they cannot drift: configuration keys, metrics and HTTP routes.

A page asks for a reference with a fenced block that names it:

    ```{aqnet-generated} config
    ```

(`config`, `metrics`, `routes` or `modules`). Before Sphinx parses the page (its `source-read` event) the block
is replaced by Markdown generated from the running code: every key of `aqnet.config.Settings` as a `{confval}`
entry (so other pages link keys with the `{confval}` role and a renamed key breaks the strict build), every metric
of `aqnet.metrics.Metrics` as a `{metric}` entry (the `{metric}` role links them), every route of the HTTP
listeners' FastAPI apps from their OpenAPI schema, and every module of the six packages with its line count and
the first paragraph of its docstring (the module map: stage, and whether it is pure). Without this extension the
block is an unknown directive, which the strict build refuses. The CLI reference is sphinx-click's (`{click}`
directive on `aqnet.cli:cli`).

The functions `config_entries`, `metric_entries`, `route_entries` and `http_apps` are what tests/test_docs.py
checks against; `http_apps` is the one place that knows where the app factories live.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

GENERATED = re.compile(r"^```\{aqnet-generated\}[ \t]+(\w+)[ \t]*\n```[ \t]*$", re.MULTILINE)


# --- where the code lives: the lead fixes these imports if a module moves -------------------------------------


def settings_model() -> type[BaseModel]:
    from aqnet.config import Settings

    return Settings


def metrics_registry() -> Any:
    """A CollectorRegistry holding every metric of the daemon."""
    from prometheus_client import CollectorRegistry

    from aqnet.metrics import Metrics

    registry = CollectorRegistry()
    Metrics.create(registry)
    return registry


def http_apps() -> dict[str, Any]:
    """Listener name → its FastAPI app, built with inert dependencies (nothing connects: only the schema is read)."""
    from prometheus_client import CollectorRegistry

    from aqnet.api import api_router
    from aqnet.http.apps import create_api_app, create_intake_app, create_internal_app
    from aqnet.http.auth import Authenticator

    async def accept(body: bytes, sensor: str, x_sensor: str | None) -> tuple[int, dict[str, Any]]:
        return 200, {}

    from aqnet.public import compliance, create_public_app

    api = create_api_app(api_router(None))  # type: ignore[arg-type]  # the pool is never used
    return {"intake": create_intake_app(accept, Authenticator(None)),
            "api": api,
            "internal": create_internal_app(CollectorRegistry(), dict, api_app=api),
            "public": create_public_app(None, routers=[compliance.router])}  # type: ignore[arg-type]  # no pool used


# --- configuration keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigEntry:
    key: str  #: dotted path; `<code>` for a map's key, `[]` for a list's item
    section: str  #: the top-level section
    type: str
    default: str
    description: str
    variant: str = ""  #: for a list of alternatives (alert channels): the alternative, e.g. "type: webhook"


def _constraints(field: FieldInfo) -> str:
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥", "max_length": "length ≤"}
    out = []
    for meta in field.metadata:
        for attr, word in words.items():
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{word} {value}")
    return ", ".join(out)


def type_name(ann: Any) -> str:
    """A short, YAML-minded spelling of a type annotation."""
    origin = get_origin(ann)
    if origin is typing.Annotated:
        return type_name(get_args(ann)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        spelled = " | ".join(type_name(a) for a in args)
        return f"{spelled} | none" if len(args) < len(get_args(ann)) else spelled
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in get_args(ann))
    if origin in (list, tuple, set, frozenset):
        return f"list of {type_name(get_args(ann)[0])}" if get_args(ann) else "list"
    if origin is dict:
        key, value = get_args(ann)
        return f"map of {type_name(key)} → {type_name(value)}"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "mapping"
    return {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
            "datetime": "date-time"}.get(getattr(ann, "__name__", ""), getattr(ann, "__name__", str(ann)))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        return "(section)"
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return str(value)


def _models_in(ann: Any) -> list[type[BaseModel]]:
    """The models a list or map (or an Annotated union inside one) holds."""
    origin = get_origin(ann)
    if origin is typing.Annotated:
        return _models_in(get_args(ann)[0])
    if origin in (Union, types.UnionType):
        return [m for a in get_args(ann) for m in _models_in(a)]
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return []


def _variant(model: type[BaseModel]) -> str:
    tag = model.model_fields.get("type")
    if tag is not None and get_origin(tag.annotation) is Literal:
        return f"type: {get_args(tag.annotation)[0]}"
    return ""


def config_entries(model: type[BaseModel] | None = None, prefix: str = "", section: str = "",
                   variant: str = "") -> list[ConfigEntry]:
    """Every key: the leaves of nested sections, and inside maps and lists of models their items' keys too."""
    model = model or settings_model()
    out: list[ConfigEntry] = []
    for name, field in model.model_fields.items():
        key = prefix + name
        top = section or name
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += config_entries(ann, key + ".", top, variant)
            continue
        spelled = type_name(ann)
        limits = _constraints(field)
        out.append(ConfigEntry(key, top, f"{spelled} ({limits})" if limits else spelled, _default(field),
                               (field.description or "").strip(), variant))
        origin = get_origin(ann)
        if origin is dict:
            for item in _models_in(get_args(ann)[1]):
                out += config_entries(item, f"{key}.<{name.rstrip('s')}>.", top, variant)
        elif origin in (list, tuple):
            for item in _models_in(get_args(ann)[0]):
                out += config_entries(item, f"{key}[].", top, _variant(item))
    return out


def _config_markdown() -> str:
    model = settings_model()
    lines: list[str] = []
    sections: dict[str, list[ConfigEntry]] = {}
    for entry in config_entries(model):
        sections.setdefault(entry.section, []).append(entry)
    for section, entries in sections.items():
        lines += [f"## `{section}`", ""]
        sub = model.model_fields[section].annotation
        doc = (sub.__doc__ or "").strip() if isinstance(sub, type) and issubclass(sub, BaseModel) else ""
        if doc and not doc.startswith("!!"):
            lines += [" ".join(doc.split()), ""]
        by_key: dict[str, list[ConfigEntry]] = {}
        for entry in entries:
            by_key.setdefault(entry.key, []).append(entry)
        for key, variants in by_key.items():
            lines.append(f"```{{confval}} {key}")
            same: dict[tuple[str, str, str], list[str]] = {}
            for entry in variants:
                same.setdefault((entry.type, entry.default, entry.description), []).append(entry.variant)
            for (type_, default, description), names in same.items():
                where = f"*{', '.join(names)}* · " if any(names) and len(same) > 1 else ""
                lines += [f"{where}**Type** `{type_}` · **Default** `{default}`", "",
                          description or "*(no description yet)*", ""]
            lines += ["```", ""]
    return "\n".join(lines)


# --- metrics --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricEntry:
    name: str  #: as Prometheus scrapes it: counters with `_total`
    type: str
    labels: tuple[str, ...]
    documentation: str


def metric_entries() -> list[MetricEntry]:
    registry = metrics_registry()
    out = []
    for collector in list(registry._collector_to_names):  # noqa: SLF001 - the registry lists no collectors publicly
        for family in collector.describe():
            name = family.name + "_total" if family.type == "counter" else family.name
            out.append(MetricEntry(name, family.type, tuple(getattr(collector, "_labelnames", ())),
                                   family.documentation.strip()))
    return sorted(out, key=lambda m: m.name)


def _metrics_markdown() -> str:
    lines: list[str] = []
    groups: dict[str, list[MetricEntry]] = {}
    for metric in metric_entries():
        groups.setdefault(metric.name.split("_")[1], []).append(metric)
    for group, metrics in sorted(groups.items()):
        lines += [f"## `aqnet_{group}_…`", ""]
        for m in metrics:
            labels = ", ".join(f"`{label}`" for label in m.labels) or "none"
            lines += [f"```{{metric}} {m.name}", f"**Type** {m.type} · **Labels** {labels}", "",
                      m.documentation or "*(no description yet)*", "```", ""]
    return "\n".join(lines)


# --- HTTP routes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteEntry:
    listener: str
    method: str
    path: str
    summary: str
    description: str


def route_entries() -> list[RouteEntry]:
    out = []
    for listener, app in http_apps().items():
        for path, operations in app.openapi().get("paths", {}).items():
            for method, op in operations.items():
                out.append(RouteEntry(listener, method.upper(), path, (op.get("summary") or "").strip(),
                                      " ".join((op.get("description") or "").split())))
    return out


def _unlisted(app: Any) -> list[str]:
    """Paths an app serves outside its OpenAPI schema (mounted apps, schema and docs pages)."""
    out = []
    for route in app.routes:
        if getattr(route, "include_in_schema", True) is False or type(route).__name__ == "Mount":
            path = getattr(route, "path", "")
            if path and not path.startswith(("/docs/oauth2", "/redoc")):
                out.append(path)
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _routes_markdown() -> str:
    lines: list[str] = []
    apps = http_apps()
    entries = route_entries()
    for listener, app in apps.items():
        lines += [f"## `http.{listener}`", "", "| method | path | summary | description |", "|---|---|---|---|"]
        for r in (e for e in entries if e.listener == listener):
            lines.append(f"| {r.method} | `{_cell(r.path)}` | {_cell(r.summary)} | "
                         f"{_cell(r.description) or '*(no description yet)*'} |")
        lines.append("")
        extra = _unlisted(app)
        if extra:
            lines += ["Also served here, outside the OpenAPI schema: " + ", ".join(f"`{p}`" for p in extra) + ".",
                      ""]
    return "\n".join(lines)


# --- the module map -------------------------------------------------------------------------------------------

PACKAGES = ("sensors", "ingest", "storage", "alerts", "aqnet", "simulators")  #: in data-path order, shell last


@dataclass(frozen=True)
class ModuleEntry:
    path: str  #: relative to the checkout, e.g. "sensors/modbus/decode.py"
    lines: int
    summary: str  #: the docstring's first line ("" when there is none)


def module_entries(root: Path | None = None) -> list[ModuleEntry]:
    """Every module of the packages (tests, data files and `__main__` aside), read as text: nothing is imported."""
    import ast

    root = root or Path(__file__).resolve().parents[2]
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            doc = ast.get_docstring(ast.parse(text)) or ""
            out.append(ModuleEntry(path.relative_to(root).as_posix(), text.count("\n"), doc.split("\n\n")[0]
                                   .replace("\n", " ").strip()))
    return out


def _modules_markdown() -> str:
    lines: list[str] = []
    entries = module_entries()
    for package in PACKAGES:
        mine = [m for m in entries if m.path.split("/")[0] == package]
        lines += [f"## `{package}/`", "", f"{len(mine)} modules, {sum(m.lines for m in mine):,} lines.", "",
                  "| module | lines | what it is |", "| --- | ---: | --- |"]
        lines += [f"| `{m.path}` | {m.lines} | {_cell(m.summary)} |" for m in mine]
        lines.append("")
    return "\n".join(lines)


# --- Sphinx wiring --------------------------------------------------------------------------------------------

GENERATORS = {"config": _config_markdown, "metrics": _metrics_markdown, "routes": _routes_markdown,
              "modules": _modules_markdown}


def _source_read(app: Any, docname: str, source: list[str]) -> None:
    def replace(match: re.Match[str]) -> str:
        what = match.group(1)
        if what not in GENERATORS:
            raise ValueError(f"{docname}: unknown aqnet-generated reference {what!r} (one of {sorted(GENERATORS)})")
        return GENERATORS[what]()

    source[0] = GENERATED.sub(replace, source[0])


def _always_outdated(app: Any, env: Any, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    """Pages generated from the code are read again on every build: the code may have changed, their source not."""
    out = []
    for docname in env.found_docs:
        text = Path(env.doc2path(docname)).read_text(encoding="utf-8")
        if GENERATED.search(text) or ".. click::" in text:
            out.append(docname)
    return out


def setup(app: Any) -> dict[str, Any]:
    app.connect("source-read", _source_read)
    app.connect("env-get-outdated", _always_outdated)
    app.add_object_type("metric", "metric", indextemplate="pair: %s; metric")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
