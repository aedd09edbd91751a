"""Stage 4 — what the scheduler computes and who hears about it: averages with completeness rules, alert rules
and their state machine, and the jobs that run them against the database.

Index: `alerts.averaging.averages`, `alerts.rules`, `alerts.rules.state`, `alerts.jobs`; bundled rules in
`default_rules.yaml`.
"""
