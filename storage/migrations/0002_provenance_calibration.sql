-- 0002_provenance_calibration: per-device calibrations, the provenance of every normalised value (conditions
-- and calibration used), and the record of `aqnet reprocess` runs.
-- Applied once by storage/migrate.py inside one transaction; never edit after release: add 0003_... instead.

-- btree_gist lets the exclusion constraint below compare text with = (a trusted contrib extension)
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- ------------------------------------------------------------------------------------------- calibrations

CREATE TABLE calibrations (
    id           bigserial PRIMARY KEY,
    device_id    text NOT NULL REFERENCES devices (id),
    variable     text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('linear', 'polynomial', 'humidity')),
    coefficients double precision[] NOT NULL,
    unit         text NOT NULL,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    source       text NOT NULL DEFAULT '',
    note         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL DEFAULT current_user,
    revoked_at   timestamptz,
    revoked_by   text,
    CONSTRAINT calibrations_period CHECK (valid_to IS NULL OR valid_from < valid_to),
    CONSTRAINT calibrations_coefficients CHECK (
        array_ndims(coefficients) = 1
        AND array_position(coefficients, NULL) IS NULL
        AND NOT (coefficients && ARRAY['NaN', 'Infinity', '-Infinity']::double precision[])
        AND CASE kind
                WHEN 'linear' THEN cardinality(coefficients) = 2 AND coefficients[1] <> 0
                WHEN 'polynomial' THEN cardinality(coefficients) >= 2
                WHEN 'humidity' THEN cardinality(coefficients) = 1 AND coefficients[1] >= 0
            END),
    CONSTRAINT calibrations_revoked CHECK ((revoked_at IS NULL) = (revoked_by IS NULL)),
    -- at most one calibration in force per (device, variable) at any time; revoked ones do not count
    CONSTRAINT calibrations_no_overlap EXCLUDE USING gist (
        device_id WITH =, variable WITH =, tstzrange(valid_from, valid_to, '[)') WITH &&
    ) WHERE (revoked_at IS NULL)
);
COMMENT ON TABLE calibrations IS
    'Per-device calibrations (ingest/calibration.py), applied to the value in the device''s reported unit before '
    'unit conversion and the reference-conditions correction. A wrong calibration is revoked (revoked_at), never '
    'deleted: readings reference it. No coefficients ship with aqnet; each row names its source.';
COMMENT ON COLUMN calibrations.device_id IS 'devices.id: calibrations follow the hardware, not the sensor.';
COMMENT ON COLUMN calibrations.variable IS 'Vocabulary code (sensors.variables) the calibration corrects.';
COMMENT ON COLUMN calibrations.kind IS
    'linear: a·x + b; polynomial: Σ cᵢ·xⁱ; humidity: κ-Köhler correction x / (1 + (κ/1.65)·a_w/(1 − a_w)), '
    'a_w = RH/100 (Crilley et al. 2018, Atmos. Meas. Tech. 11, 709–720), for low-cost PM sensors.';
COMMENT ON COLUMN calibrations.coefficients IS
    'linear: {a, b}; polynomial: {c0, c1, …, cn}; humidity: {κ} (dimensionless). Values in unit.';
COMMENT ON COLUMN calibrations.unit IS 'The reported unit x and the coefficients are in (e.g. ppb, ug/m3).';
COMMENT ON COLUMN calibrations.valid_from IS 'Start of validity (inclusive), by measurement time.';
COMMENT ON COLUMN calibrations.valid_to IS 'End of validity (exclusive); NULL: still valid.';
COMMENT ON COLUMN calibrations.source IS 'Where the coefficients come from (co-location report, paper, datasheet).';
COMMENT ON COLUMN calibrations.revoked_at IS 'When the calibration was withdrawn as wrong; NULL: in force.';

CREATE INDEX calibrations_device_variable_idx ON calibrations (device_id, variable, valid_from);

-- ------------------------------------------------------------------------------- measurement provenance

ALTER TABLE measurements
    ADD COLUMN conditions_temp_c       double precision,
    ADD COLUMN conditions_pressure_hpa double precision,
    ADD COLUMN conditions_source       text,
    ADD COLUMN calibration_id          bigint REFERENCES calibrations (id),
    ADD COLUMN calibration_rh_pct      double precision;

COMMENT ON COLUMN measurements.conditions_temp_c IS
    'Temperature, °C, used to correct a local mass concentration to 25 °C/760 mmHg (Res. 2254/2017); NULL: '
    'no correction (gas mixing ratio, met variable, or reported at reference conditions).';
COMMENT ON COLUMN measurements.conditions_pressure_hpa IS
    'Pressure, hPa, used with conditions_temp_c for the reference-conditions correction; NULL: no correction.';
COMMENT ON COLUMN measurements.conditions_source IS
    'Where conditions_temp_c/conditions_pressure_hpa came from: own, nearest:<sensor id>, site-default, or '
    'temperature:…;pressure:… when they differ; reported-reference for a mass concentration the device '
    'reported at the reference conditions (never corrected twice); NULL for values needing no conditions.';
COMMENT ON COLUMN measurements.calibration_id IS
    'calibrations.id applied to raw_value (flags has CALIBRATED, bit 8); NULL: not calibrated.';
COMMENT ON COLUMN measurements.calibration_rh_pct IS
    'Relative humidity, %, a humidity-correction calibration used; NULL otherwise.';

-- ----------------------------------------------------------------------------------- reprocess runs

CREATE TABLE reprocess_runs (
    id              bigserial PRIMARY KEY,
    run_at          timestamptz NOT NULL DEFAULT now(),
    run_by          text NOT NULL,
    db_user         text NOT NULL DEFAULT current_user,
    sensor_id       text NOT NULL REFERENCES sensors (id),
    time_from       timestamptz NOT NULL,
    time_to         timestamptz NOT NULL,
    rows_examined   integer NOT NULL CHECK (rows_examined >= 0),
    rows_changed    integer NOT NULL CHECK (rows_changed >= 0),
    rows_skipped    integer NOT NULL CHECK (rows_skipped >= 0),
    skipped_reasons jsonb NOT NULL DEFAULT '{}',
    calibration_ids bigint[] NOT NULL DEFAULT '{}',
    note            text NOT NULL DEFAULT '',
    CHECK (time_from < time_to)
);
CREATE INDEX reprocess_runs_sensor_idx ON reprocess_runs (sensor_id, run_at DESC);
COMMENT ON TABLE reprocess_runs IS
    '`aqnet reprocess` runs: normalised values re-derived from raw_value/raw_unit with the calibrations valid at '
    'each reading''s time, in [time_from, time_to). Raw values are never changed.';
COMMENT ON COLUMN reprocess_runs.run_by IS 'Who ran it (the operator''s login as given to aqnet).';
COMMENT ON COLUMN reprocess_runs.calibration_ids IS 'Calibrations applied to the re-derived values.';
COMMENT ON COLUMN reprocess_runs.skipped_reasons IS
    'Rows not re-derived, by reason (e.g. no_provenance: stored before conditions were recorded).';

CREATE TABLE reprocess_changes (
    run_id                 bigint NOT NULL REFERENCES reprocess_runs (id) ON DELETE CASCADE,
    time                   timestamptz NOT NULL,
    sensor_id              text NOT NULL,
    device_id              text NOT NULL,
    variable               text NOT NULL,
    old_value              double precision,
    new_value              double precision,
    old_flags              integer NOT NULL,
    new_flags              integer NOT NULL,
    old_calibration_id     bigint,
    new_calibration_id     bigint,
    old_calibration_rh_pct double precision,
    new_calibration_rh_pct double precision,
    PRIMARY KEY (run_id, sensor_id, device_id, variable, time)
);
COMMENT ON TABLE reprocess_changes IS
    'Every measurement a reprocess run changed, with its value, flags and calibration before and after: the '
    'audit trail, and what an undo needs. Values in the canonical unit of measurements.unit.';
