"""The Mosquitto broker's logins and access rules for aqnet: who may publish or read what (`acl`, pure) and the
password, ACL and roles files with the broker's reload (`credentials`, I/O). Stage 1.
"""

from sensors.mqtt.broker.acl import (
    DAEMON_USER,
    DEFAULT_ALERT_PREFIX,
    SERVICE_PREFIX,
    SIMULATOR_USER,
    CredentialsError,
    ServiceRole,
    allowed_topics,
    check_sensor_username,
)
from sensors.mqtt.broker.credentials import (
    BrokerFiles,
    Issued,
    issue_credentials,
    new_password,
    reload_after_change,
    remove_service_user,
    remove_user,
    set_service_user,
)

__all__ = ["DAEMON_USER", "DEFAULT_ALERT_PREFIX", "SERVICE_PREFIX", "SIMULATOR_USER", "BrokerFiles",
           "CredentialsError", "Issued", "ServiceRole", "allowed_topics", "check_sensor_username",
           "issue_credentials", "new_password", "reload_after_change", "remove_service_user", "remove_user",
           "set_service_user"]
