"""The web console for technicians and officers (issue 23): server-rendered pages under `/console/` on the API
listener, for people who sign in (storage.users) rather than programs with tokens. Shell (aqnet); I/O.

`console_router(...)` assembles the pages: `access` (sign-in, sign-out, static files), `technicians` (sensors,
health, registration, credentials, maintenance, commissioning), `officers` (alert inbox, alert pages, validation)
and `users` (the admin's user list). Every page checks the signed-in user's role with the API's own role sets
(aqnet.http.roles) and every form its CSRF token (aqnet.console.context).
"""

from aqnet.console.router import console_router

__all__ = ["console_router"]
