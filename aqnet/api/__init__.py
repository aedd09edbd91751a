"""The HTTP API (`/api/v1`), FastAPI over storage: `api_router` assembles its operation modules (registry,
calibrations, maintenance, alerts, ack_link) on the dependencies of `context`, with the errors of `errors` and
the alert records of `alert_models`. Shell (FastAPI)."""

from aqnet.api.alert_models import AlertDetail, AlertRecord, ExceedanceRecord, alert_detail
from aqnet.api.context import OFFICER, READERS, TECHNICIAN
from aqnet.api.errors import ApiError
from aqnet.api.router import api_router

__all__ = ["OFFICER", "READERS", "TECHNICIAN", "AlertDetail", "AlertRecord", "ApiError", "ExceedanceRecord",
           "alert_detail", "api_router"]
