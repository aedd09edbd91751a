"""Stage 4 — what the scheduler computes and who hears about it, in three subpackages along the data path:
averages and indices with their completeness rules (`alerts.averaging`), alert rules and their state machine
(`alerts.rules`), and the delivery of alert transitions to people (`alerts.delivery`), plus the scheduled jobs
that run them against the database (`alerts.jobs`) and the jobs' leader election (`alerts.leader`).

Index: `alerts.averaging` (compute_windows), `alerts.rules` (Rule, evaluate_alerts; bundled rules in
`alerts/rules/default_rules.yaml`), `alerts.delivery` (Dispatcher, Notice; channels in `alerts.delivery.channels`),
`alerts.jobs` (run_stage_jobs, dry_run_rule), `alerts.leader` (Leadership). The SQL is in `storage`.
"""

__all__ = ["averaging", "delivery", "jobs", "leader", "rules"]
