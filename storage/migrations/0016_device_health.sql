-- 0016_device_health: the durable record of devices going down and coming back up (device_status_events), and
-- the health job's per-device watch (device_watch), from which uptime, MTBF and MTTR are computed
-- (alerts/health/reliability.py; docs/operators/device-health.md).
-- Applied once by storage/migrate.py inside one transaction; never edit after release: add a later one instead.

CREATE TABLE device_status_events (
    device_id   text NOT NULL REFERENCES devices (id),
    sensor_id   text NOT NULL REFERENCES sensors (id),
    time        timestamptz NOT NULL,
    state       text NOT NULL CHECK (state IN ('down', 'up')),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, time, state)
);
CREATE INDEX device_status_events_time_idx ON device_status_events (time);
COMMENT ON TABLE device_status_events IS
    'Device outages as transitions, written once by the health job (alerts/health): down at the last time aqnet '
    'heard the device (stored a reading from it, by received_at) before a silence longer than '
    'health.down_after_s; up at the first reading after it. Never updated; retention is the operator''s.';
COMMENT ON COLUMN device_status_events.time IS 'down: start of the silence; up: first reading after it.';
COMMENT ON COLUMN device_status_events.recorded_at IS 'When the health job recorded the transition.';

CREATE TABLE device_watch (
    device_id     text PRIMARY KEY REFERENCES devices (id),
    sensor_id     text NOT NULL REFERENCES sensors (id),
    watched_from  timestamptz NOT NULL,
    checked_until timestamptz NOT NULL,
    last_heard    timestamptz,
    down_since    timestamptz,
    CHECK (watched_from <= checked_until)
);
COMMENT ON TABLE device_watch IS
    'The health job''s state per device: receive times up to checked_until are accounted for in '
    'device_status_events; down_since is set while an outage is open. Silence before watched_from is no outage.';
