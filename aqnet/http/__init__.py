"""The daemon's HTTP listeners: one app per audience, authentication, bounds. Shell (aqnet), I/O.

Index: `aqnet.http.apps` (the intake, API and internal apps, `LISTENERS`), `aqnet.http.auth` (devices' and API
clients' credentials), `aqnet.http.limits` (pure: client address, basic credentials, failure limit),
`aqnet.http.server` (a bounded uvicorn server per listener)."""

from aqnet.http.apps import LISTENERS, AirrohrHandler, create_api_app, create_intake_app, create_internal_app
from aqnet.http.auth import Authenticator, Limited, Unavailable
from aqnet.http.limits import TrustedProxies
from aqnet.http.server import server_config

__all__ = ["LISTENERS", "AirrohrHandler", "Authenticator", "Limited", "TrustedProxies", "Unavailable",
           "create_api_app", "create_intake_app", "create_internal_app", "server_config"]
