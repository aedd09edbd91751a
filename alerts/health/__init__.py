"""Device health (alerts stage): devices going down and up (`alerts.health.reliability`, pure), the data
indicators (`alerts.health.indicators`, pure) and the job and report over the database (`alerts.health.job`).

Index: `update_status`, `device_health`, `DeviceHealth`, `HealthPolicy`.
"""

from alerts.health.job import DeviceHealth, HealthPolicy, device_health, update_status

__all__ = ["DeviceHealth", "HealthPolicy", "device_health", "update_status"]
