"""The public open-data API (issue 22): read-only routes without a login. Shell (FastAPI).

Index: `aqnet.public.compliance` (`router`: the annual compliance report, `GET /v1/compliance/{year}`).
"""
