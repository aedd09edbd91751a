"""schemathesis against the public open-data listener's own OpenAPI description (`/v1/openapi.json`), served over
a real TimescaleDB holding hours of the simulated network (the PM2.5 episode harness, KEN and CSE): every check
(schema conformance of every answer, status codes, content types and headers, negative data, methods not
documented answered 405) over the examples, coverage and fuzzing phases, and no server error. A loose schema would
pass this alone: test_public_provenance asserts the provenance fields by name."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.aqnet.public.public_server import public_server
from tests.e2e.alert_harness import AlertHarness, test_rules

MAX_EXAMPLES = 10
# positive_data_acceptance: a query valid by the schema may still be refused by a rule JSON Schema cannot say
# (datetime_from after datetime_to, a range longer than public.max_range_days, an unknown location): 404 or 422
# naming it, which is right.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "304", "404", "422"]
"""


async def _simulate(database_url: str) -> None:
    async with AlertHarness(database_url, test_rules(), stations=("KEN", "CSE")) as harness:
        await harness.warm_up(6)


def test_schemathesis_finds_no_server_error_on_the_public_listener(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_simulate(database_url))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    with public_server(database_url) as base:
        cmd = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "--no-color", "run",
               f"{base}/v1/openapi.json", "--url", base, "--checks", "all", "--phases", "examples,coverage,fuzzing",
               "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--seed", "8", "--generation-database",
               "none", "--request-timeout", "30"]
        run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=500)
    assert run.returncode == 0, (run.stdout + run.stderr)[-15000:]
    assert "passed" in run.stdout
