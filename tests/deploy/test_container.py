"""deploy/container: the image build and compose file, checked statically (no container engine on the test
machine): every package the project ships is copied into the image, it runs as a non-root user the command
systemd runs, and compose's references (build context, Containerfile, mounted files, secrets) resolve."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = ROOT / "deploy" / "container"


def _instructions() -> list[tuple[str, str]]:
    text = (CONTAINER / "Containerfile").read_text().replace("\\\n", " ")
    return [(m.group(1).upper(), m.group(2).strip())
            for m in re.finditer(r"^([A-Za-z]+)\s+(.*)$", text, flags=re.MULTILINE) if not m.group(0).startswith("#")]


def test_image_contains_every_shipped_package_and_runs_unprivileged() -> None:
    ins = _instructions()
    assert ins[0][0] == "FROM" and "python:3.11" in ins[0][1]  # pyproject: requires-python >= 3.11
    copied = {src for op, args in ins if op == "COPY" for src in args.split()[:-1]}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"packages not copied into the image: {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied  # README is the package's readme: pip needs it
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    users = [args for op, args in ins if op == "USER"]
    assert users == ["aqnet"]
    assert [op for op, _ in ins].index("USER") > max(i for i, (op, _) in enumerate(ins) if op == "RUN")
    cmd = dict(ins)["CMD"]
    assert cmd == '["run", "--config", "/etc/aqnet/aqnet.yaml"]' and dict(ins)["ENTRYPOINT"] == '["aqnet"]'
    assert "9108" in dict(ins)["EXPOSE"] and "/healthz" in dict(ins)["HEALTHCHECK"]


def test_compose_references_resolve() -> None:
    compose = yaml.safe_load((CONTAINER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"timescaledb", "mosquitto", "aqnet"}
    build = services["aqnet"]["build"]
    context = (CONTAINER / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).is_file()
    assert services["aqnet"]["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert services["aqnet"]["read_only"] is True and services["aqnet"]["cap_drop"] == ["ALL"]
    assert "/var/lib/aqnet" in " ".join(services["aqnet"]["volumes"])  # the spool survives a restart
    mounts = " ".join(services["mosquitto"]["volumes"])
    assert "/etc/mosquitto" in mounts and "aqnet.conf" in " ".join(services["mosquitto"]["command"])
    for name, secret in compose.get("secrets", {}).items():
        assert name in services["timescaledb"]["secrets"] and secret["file"].startswith("./")
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert named <= set(compose["volumes"]), f"undeclared volumes: {named - set(compose['volumes'])}"
