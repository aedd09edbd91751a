"""aqnet's command line (`aqnet …`): the root group `cli` and its console-script entry point `main`; one module per
command group (alerts, broker, checks, db, deadletter, exports (export, report), field, profiles, registry,
reprocess, sensors, tokens, users), the options they share (`options`) and the times they parse (`times`). Shell
(click)."""

from aqnet.cli.root import cli, main

__all__ = ["cli", "main"]
