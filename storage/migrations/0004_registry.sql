-- 0004_registry: the sensor registry technicians edit (storage/registry.py): lifecycle, notes, device firmware,
-- client id, serial line settings and payload channels, uniqueness of topics and hardware serials across sensors,
-- the audit log of every change, the history of device swaps, and maintenance windows.
-- Applied once by storage/migrate.py inside one transaction; never edit after release: add 0005_... instead.

-- ------------------------------------------------------------------------------------------------ sensors

ALTER TABLE sensors
    ADD COLUMN notes      text NOT NULL DEFAULT '',
    ADD COLUMN retired_at timestamptz,
    ADD CONSTRAINT sensors_lifecycle
        CHECK (lifecycle IN ('planned', 'commissioning', 'active', 'maintenance', 'retired')),
    ADD CONSTRAINT sensors_retired CHECK ((lifecycle = 'retired') = (retired_at IS NOT NULL));
COMMENT ON COLUMN sensors.lifecycle IS
    'planned → commissioning → active ⇄ maintenance; any state → retired (final). The daemon reads sensors in '
    'commissioning, active and maintenance. Sensors seeded from the configuration start active.';
COMMENT ON COLUMN sensors.notes IS 'Free text for technicians (access, keys, quirks).';
COMMENT ON COLUMN sensors.retired_at IS 'When the sensor was retired (lifecycle retired); NULL otherwise.';

-- ------------------------------------------------------------------------------------------------ devices

ALTER TABLE devices
    ADD COLUMN firmware    text,
    ADD COLUMN client_id   text,
    ADD COLUMN serial_port text,
    ADD COLUMN baudrate    integer CHECK (baudrate > 0),
    ADD COLUMN parity      text CHECK (parity IN ('N', 'E', 'O')),
    ADD COLUMN stopbits    integer CHECK (stopbits IN (1, 2)),
    ADD COLUMN bytesize    integer CHECK (bytesize IN (7, 8)),
    ADD COLUMN channels    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN retired_at  timestamptz,
    ADD COLUMN origin      text NOT NULL DEFAULT 'config' CHECK (origin IN ('config', 'registry'));
COMMENT ON COLUMN devices.firmware IS 'Firmware revision the technician read off the instrument.';
COMMENT ON COLUMN devices.client_id IS 'MQTT client id the microsensor connects with, when fixed.';
COMMENT ON COLUMN devices.serial_port IS 'modbus-rtu: the serial device, e.g. /dev/ttyUSB0 (line settings beside).';
COMMENT ON COLUMN devices.channels IS
    'Payload channels this device takes (airrohr SDS011, BME280; PurpleAir a, b); empty: every channel.';
COMMENT ON COLUMN devices.retired_at IS
    'When a technician took the device out (swap, retirement, import): the configuration never re-activates it.';
COMMENT ON COLUMN devices.origin IS
    'config: seeded from the daemon''s configuration (storage.registry.upsert_registry keeps it in step); '
    'registry: added by a technician (CLI, API, import), never deactivated by the configuration.';

-- A topic identifies one sensor among the active devices, except the shared wildcard topics of the
-- self-identifying formats (airrohr/+/data, purpleair/+/data), where the payload's hardware serial does; several
-- devices of one sensor (channel groups) share its topic and serial. Hence exclusion constraints comparing
-- sensor_id with <> (btree_gist, created by 0002) rather than plain unique indexes. storage/registry.py checks
-- first and names the other sensor; these are the last line.
ALTER TABLE devices
    ADD CONSTRAINT devices_topic_one_sensor EXCLUDE USING gist (topic WITH =, sensor_id WITH <>)
        WHERE (active AND topic IS NOT NULL AND topic !~ '[+#]'),
    ADD CONSTRAINT devices_hardware_serial_one_sensor EXCLUDE USING gist (hardware_serial WITH =, sensor_id WITH <>)
        WHERE (active AND hardware_serial IS NOT NULL);

-- ---------------------------------------------------------------------------------------------- audit log

CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    action    text NOT NULL,
    sensor_id text,
    device_id text,
    before    jsonb,
    after     jsonb
);
CREATE INDEX audit_log_sensor_idx ON audit_log (sensor_id, id DESC);
COMMENT ON TABLE audit_log IS
    'Every change to the registry, written in the same transaction as the change: who (actor: the technician''s '
    'login, an API token name, or config for the daemon''s seeding), when, what (action, e.g. sensor.add, '
    'device.swap, sensor.lifecycle), and the changed fields before and after. max(id) is the registry version '
    'the daemon polls to pick up changes.';

-- --------------------------------------------------------------------------------------- device history

CREATE TABLE device_history (
    sensor_id    text NOT NULL REFERENCES sensors (id),
    device_id    text NOT NULL REFERENCES devices (id),
    installed_at timestamptz NOT NULL,
    removed_at   timestamptz,
    replaced_by  text REFERENCES devices (id),
    PRIMARY KEY (device_id, installed_at),
    CHECK (removed_at IS NULL OR installed_at <= removed_at)
);
CREATE INDEX device_history_sensor_idx ON device_history (sensor_id, installed_at);
COMMENT ON TABLE device_history IS
    'Which device served a sensor when. A swap closes the old device''s row (removed_at, replaced_by) and opens '
    'one for the new device; measurements stay keyed by sensor_id, so the sensor''s series is continuous.';

-- ----------------------------------------------------------------------------------- maintenance windows

CREATE TABLE maintenance_windows (
    id         bigserial PRIMARY KEY,
    sensor_id  text NOT NULL REFERENCES sensors (id),
    device_id  text REFERENCES devices (id),
    variable   text,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    reason     text NOT NULL CHECK (reason <> ''),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at)
);
CREATE INDEX maintenance_windows_sensor_idx ON maintenance_windows (sensor_id, starts_at);
CREATE INDEX maintenance_windows_period_idx ON maintenance_windows USING gist (tstzrange(starts_at, ends_at, '[)'));
COMMENT ON TABLE maintenance_windows IS
    'Periods [starts_at, ends_at) when a sensor, or one device (device_id) or variable of it, is under '
    'maintenance: readings inside are flagged QC.MAINTENANCE and alerts are suppressed. NULL device_id / variable: '
    'the whole sensor.';
