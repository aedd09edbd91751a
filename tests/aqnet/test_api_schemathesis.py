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

import subprocess
import sys
from pathlib import Path

from tests.aqnet.api_server import ApiServer, api_server  # noqa: F401 - the fixture

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
                   "run", f"{api_server.base_url}/openapi.json", "--checks", "all",
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
