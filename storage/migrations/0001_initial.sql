-- 0001_initial: registry (sensors, devices, primary devices), measurements and averages hypertables,
-- alerts and their events, dead letters, and the read-only role Grafana uses.
-- Applied once by storage/migrate.py inside one transaction; never edit after release: add 0002_... instead.

-- ------------------------------------------------------------------------------------------------ registry

CREATE TABLE sensors (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('station', 'microsensor')),
    lat         double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon         double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    elevation_m double precision,
    locality    text NOT NULL DEFAULT '',
    address     text NOT NULL DEFAULT '',
    mobile      boolean NOT NULL DEFAULT false,
    lifecycle   text NOT NULL DEFAULT 'active',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sensors IS
    'Logical measuring points: reference.json station codes and microsensor ids. The id survives hardware swaps.';
COMMENT ON COLUMN sensors.lifecycle IS 'Lifecycle state (sensors.sensor), e.g. active, maintenance, retired.';

CREATE TABLE devices (
    id              text PRIMARY KEY,
    sensor_id       text NOT NULL REFERENCES sensors (id),
    protocol        text NOT NULL,
    profile         text NOT NULL,
    host            text,
    port            integer CHECK (port BETWEEN 1 AND 65535),
    unit_id         integer,
    topic           text,
    hardware_serial text,
    variables       text[] NOT NULL DEFAULT '{}',
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_sensor_id_idx ON devices (sensor_id);
COMMENT ON TABLE devices IS
    'Instruments behind a sensor: Modbus analysers of a station (host, port, unit_id) or an MQTT board (topic).';

CREATE TABLE primary_devices (
    sensor_id  text NOT NULL REFERENCES sensors (id),
    variable   text NOT NULL,
    device_id  text NOT NULL REFERENCES devices (id),
    PRIMARY KEY (sensor_id, variable)
);
COMMENT ON TABLE primary_devices IS
    'The device whose readings of a variable count for the sensor''s averages, indices and alerts.';

-- ------------------------------------------------------------------------------------------- measurements

CREATE TABLE measurements (
    time        timestamptz NOT NULL,
    sensor_id   text NOT NULL,
    variable    text NOT NULL,
    value       double precision,
    unit        text NOT NULL,
    flags       integer NOT NULL DEFAULT 0,
    raw_value   double precision,
    raw_unit    text,
    device_id   text NOT NULL,
    received_at timestamptz NOT NULL,
    -- a hypertable's unique constraints must include the time column
    CONSTRAINT measurements_key UNIQUE (sensor_id, device_id, variable, time)
);
SELECT create_hypertable('measurements', by_range('time', INTERVAL '1 day'));
-- the typical Grafana series query and the latest-value query: one sensor, one variable, newest first
CREATE INDEX measurements_sensor_variable_time_idx ON measurements (sensor_id, variable, time DESC);

COMMENT ON TABLE measurements IS
    'Normalised readings, one row per (sensor, device, variable, time). Values are in the canonical unit of '
    'VARIABLES.md; mass and gas concentrations in µg/m³ at the reference conditions of Resolución 2254 de 2017 '
    '(25 °C, 760 mmHg), CO included. Flagged readings are stored, not dropped.';
COMMENT ON COLUMN measurements.time IS 'Measurement time (device clock, or receive time when flags has RECEIVE_TIME).';
COMMENT ON COLUMN measurements.sensor_id IS 'sensors.id: the logical measuring point.';
COMMENT ON COLUMN measurements.variable IS 'Vocabulary code (sensors.variables), e.g. pm25, no2, temperature.';
COMMENT ON COLUMN measurements.value IS
    'Value in the canonical unit (unit column): µg/m³ at 25 °C/760 mmHg (Res. 2254/2017) for concentrations.';
COMMENT ON COLUMN measurements.unit IS 'Canonical unit of the variable (VARIABLES.md), e.g. µg/m³, °C, hPa, %.';
COMMENT ON COLUMN measurements.flags IS
    'QC bitmask documented in ingest/reading.py (QC IntFlag); bits are never renumbered. 0 = no flag.';
COMMENT ON COLUMN measurements.raw_value IS 'The value as the device reported it, in raw_unit (provenance).';
COMMENT ON COLUMN measurements.raw_unit IS 'The unit the device reported (ppb, ppm, ug/m3, ...).';
COMMENT ON COLUMN measurements.device_id IS 'devices.id: the instrument that produced the reading.';
COMMENT ON COLUMN measurements.received_at IS 'When aqnet received the reading.';

-- ----------------------------------------------------------------------------------------------- averages

CREATE TABLE averages (
    sensor_id    text NOT NULL,
    variable     text NOT NULL,
    period       text NOT NULL CHECK (period IN ('1h', '8h', '24h', 'day', 'year')),
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    value        double precision,
    unit         text NOT NULL,
    coverage     double precision NOT NULL CHECK (coverage BETWEEN 0 AND 1),
    samples      integer NOT NULL CHECK (samples >= 0),
    valid        boolean NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (period_start < period_end),
    CONSTRAINT averages_key UNIQUE (sensor_id, variable, period, period_end)
);
SELECT create_hypertable('averages', by_range('period_end', INTERVAL '30 days'));
COMMENT ON TABLE averages IS
    'Averages over 1h/8h/24h windows, calendar days and years, stamped at the END of the period (period_end). '
    'An invalid average (coverage below the completeness rule) keeps the mean of the data there was, with '
    'valid = false and its coverage: filter on valid. Units as in measurements.';
COMMENT ON COLUMN averages.coverage IS 'Fraction (0..1) of the period covered by valid readings.';
COMMENT ON COLUMN averages.samples IS 'Number of valid readings (or sub-period averages) used.';

-- ------------------------------------------------------------------------------------------------- alerts

CREATE TABLE alerts (
    id              bigserial PRIMARY KEY,
    rule            text NOT NULL,
    scope           text NOT NULL,
    sensor_id       text,
    variable        text,
    level           text NOT NULL,
    state           text NOT NULL CHECK (state IN ('firing', 'acknowledged', 'resolved')),
    value           double precision,
    threshold       double precision,
    unit            text,
    source          text,
    started_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    acknowledged_by text,
    acknowledged_at timestamptz,
    details         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alerts_open_idx ON alerts (rule, scope, sensor_id, variable) WHERE state <> 'resolved';
CREATE INDEX alerts_started_at_idx ON alerts (started_at DESC);
COMMENT ON TABLE alerts IS 'Alert instances: one row per episode of a rule on a scope (sensor, locality, city).';

CREATE TABLE alert_events (
    id         bigserial PRIMARY KEY,
    alert_id   bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    time       timestamptz NOT NULL DEFAULT now(),
    from_state text,
    to_state   text NOT NULL,
    level      text,
    value      double precision,
    note       text
);
CREATE INDEX alert_events_alert_id_idx ON alert_events (alert_id, time);
COMMENT ON TABLE alert_events IS 'Every transition of an alert (fired, escalated, acknowledged, resolved).';

-- ------------------------------------------------------------------------------------------- dead letters

CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL,
    sensor_id   text,
    reason      text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    payload     bytea,
    reading     jsonb
);
CREATE INDEX dead_letters_received_at_idx ON dead_letters (received_at DESC);
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason, received_at DESC);
COMMENT ON TABLE dead_letters IS
    'Input aqnet could not store as a measurement (bad payload, unknown sensor, conflicting value), kept for '
    'inspection and reprocessing. source: mqtt, modbus, writer, ...; reason: a short machine-readable code.';

-- ------------------------------------------------------------------------------------- read-only role

-- For Grafana: a NOLOGIN group role; give it to a login role with
--     CREATE ROLE grafana_login LOGIN PASSWORD '...'; GRANT aqnet_readonly TO grafana_login;
-- Roles are cluster-wide, so it is created only when missing; the grants are per database.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aqnet_readonly') THEN
        CREATE ROLE aqnet_readonly NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO aqnet_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO aqnet_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO aqnet_readonly;
