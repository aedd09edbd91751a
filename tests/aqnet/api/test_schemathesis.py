"""schemathesis against the real app and TimescaleDB, authenticated as each role: every check (schema conformance,
status codes, content types and headers, negative and positive data, ignored auth, resource availability, …)
over the examples, coverage, fuzzing and stateful phases (the OpenAPI links chain add_sensor → get/update/move/
lifecycle/devices/maintenance/audit, add_device → swap/calibrate), and no server error.

The three roles run at once against one server (the reader's and officer's runs change nothing, so they do not
disturb the technician's), bounded by --max-examples. The coverage phase, which --max-examples does not bound (it
walks every boundary and negative case of the schema), runs as the technician only: the one role that reaches
every operation's logic; as reader or officer the same cases would stop at the same 403.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from aqnet.http import create_intake_app, create_internal_app
from aqnet.http.auth import Authenticator
from tests.aqnet.api.api_server import ApiServer, api_server, listeners  # noqa: F401 - the fixtures

MAX_EXAMPLES = 10
PHASES = {"technician": "examples,coverage,fuzzing,stateful", "officer": "examples,fuzzing,stateful",
          "reader": "examples,fuzzing,stateful"}

# positive_data_acceptance: a body valid by the schema may still break a registry rule that JSON Schema cannot
# say (an unknown device profile, a window ending before it starts, a calibration unit foreign to its variable,
# a value PostgreSQL refuses); the API answers those 422 with an ApiError naming the field, which is right.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""


def test_schemathesis_finds_no_server_error_as_any_role(api_server: ApiServer, tmp_path: Path) -> None:  # noqa: F811
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    runs: dict[str, subprocess.Popen[str]] = {}
    try:
        for role, secret in api_server.tokens.items():
            cmd = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "--no-color",
                   "run", f"{api_server.internal_url}/openapi.json", "--url", api_server.base_url,
                   "--checks", "all",
                   "--phases", PHASES[role], "-H", f"Authorization: Bearer {secret}",
                   "--include-path-regex", "^/api/v1/", "--max-examples", str(MAX_EXAMPLES), "--workers", "1",
                   "--seed", "8", "--generation-database", "none", "--request-timeout", "30"]
            runs[role] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                          cwd=tmp_path)
        outputs = {role: run.communicate(timeout=280)[0] for role, run in runs.items()}
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()
    failed = {role: out for role, out in outputs.items() if runs[role].returncode != 0}
    assert not failed, "\n\n".join(f"===== schemathesis as {role}:\n{out[-15000:]}" for role, out in failed.items())
    for role, out in outputs.items():
        assert "Stateful" in out and "passed" in out, f"{role}:\n{out[-3000:]}"


def _schema(app: Any, path: Path) -> Path:
    path.write_text(json.dumps(app.openapi()))
    return path


def test_schemathesis_finds_no_server_error_on_any_listener_as_anyone(listeners: ApiServer,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    """Every route of every listener — the intake as its device and as nobody, the API as nobody, the internal
    endpoints — with no server error and every answer as documented."""
    async def accept(body: bytes, sensor: str, _x: str | None) -> tuple[int, dict[str, Any]]:
        return 200, {"sensor_id": sensor, "readings": 0}

    intake = _schema(create_intake_app(accept, Authenticator(None)), tmp_path / "intake.json")
    internal = _schema(create_internal_app(CollectorRegistry(), dict), tmp_path / "internal.json")
    sensor, password = listeners.device
    runs = {"intake as its device": (str(intake), listeners.intake_url, ["--auth", f"{sensor}:{password}"]),
            "intake as nobody": (str(intake), listeners.intake_url, []),
            "api as nobody": (f"{listeners.internal_url}/openapi.json", listeners.base_url, []),
            "internal": (str(internal), listeners.internal_url, [])}
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    failed = {}
    for what, (schema, url, auth) in runs.items():
        cmd = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "--no-color",
               "run", schema, "--url", url, "--checks", "all", "--phases", "examples,coverage,fuzzing", *auth,
               "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--seed", "8", "--generation-database",
               "none", "--request-timeout", "30"]
        run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=280)
        if run.returncode != 0:
            failed[what] = run.stdout + run.stderr
    assert not failed, "\n\n".join(f"===== schemathesis, {what}:\n{out[-8000:]}" for what, out in failed.items())
    assert any(sensor == listeners.device[0] for sensor, _ in listeners.posts)  # the device's POSTs got through
