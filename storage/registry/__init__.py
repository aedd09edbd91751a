"""Stage 3, the sensor registry technicians edit (I/O, psycopg 3 async; `models` and `network_file` are pure):
sensors, devices, lifecycle, swaps, calibrations, maintenance, the audit log, network files and their import,
and the daemon's seeding from its configuration.

Index: `storage.registry.models` (the edge models and `RegistryError`), `.checks` (checks that need the database),
`.rows` (row-level writes), `.read`, `.edit`, `.network_import`, `.network_file` (YAML/CSV ↔ specs), `.seed`
(`upsert_registry`), `.calibrations` (the calibrations table).
"""

from __future__ import annotations

from storage.registry.checks import TRANSITIONS
from storage.registry.edit import (
    add_device,
    add_maintenance,
    add_sensor,
    calibrate,
    move_sensor,
    set_lifecycle,
    swap_device,
    update_sensor,
)
from storage.registry.models import (
    LIFECYCLES,
    AuditEntry,
    CalibrationSpec,
    DeviceSpec,
    ImportResult,
    Lifecycle,
    Location,
    MaintenanceSpec,
    MaintenanceWindow,
    RegistryError,
    SensorPatch,
    SensorRecord,
    SensorSpec,
)
from storage.registry.network_import import import_network, spec_from_sensor
from storage.registry.read import (
    audit_log,
    export_network,
    get_sensor,
    list_maintenance,
    list_sensors,
    load_network,
    registry_version,
)
from storage.registry.seed import RegistryResult, upsert_registry

__all__ = ["LIFECYCLES", "TRANSITIONS", "AuditEntry", "CalibrationSpec", "DeviceSpec", "ImportResult", "Lifecycle",
           "Location", "MaintenanceSpec", "MaintenanceWindow", "RegistryError", "RegistryResult", "SensorPatch",
           "SensorRecord", "SensorSpec", "add_device", "add_maintenance", "add_sensor", "audit_log", "calibrate",
           "export_network", "get_sensor", "import_network", "list_maintenance", "list_sensors", "load_network",
           "move_sensor", "registry_version", "set_lifecycle", "spec_from_sensor", "swap_device", "update_sensor",
           "upsert_registry"]
