-- 0014_zero_span_checks: every zero/span check of a reference analyser with its responses against the expected
-- values, its errors, the acceptance limits it was judged by (and their source), its verdict and the drift over
-- the device's recent checks; and the technicians' alert kind 'zero_span' (a check beyond its acceptance limit).
-- Written by alerts/zero_span_job.py (storage/zero_span_store.py). Never edit after release: add a new file instead.

CREATE TABLE zero_span_checks (
    id                bigserial PRIMARY KEY,
    sensor_id         text NOT NULL,
    device_id         text NOT NULL,
    variable          text NOT NULL,
    source            text NOT NULL CHECK (source IN ('schedule', 'status')),
    started_at        timestamptz NOT NULL,
    span_at           timestamptz NOT NULL,
    ended_at          timestamptz NOT NULL,
    purge_ends_at     timestamptz NOT NULL,
    unit              text NOT NULL,
    zero_expected     double precision NOT NULL,
    zero_response     double precision,
    zero_n            integer NOT NULL CHECK (zero_n >= 0),
    span_expected     double precision NOT NULL,
    span_response     double precision,
    span_n            integer NOT NULL CHECK (span_n >= 0),
    zero_error        double precision,
    span_error_pct    double precision,
    zero_limit        double precision NOT NULL CHECK (zero_limit > 0),
    span_limit_pct    double precision NOT NULL CHECK (span_limit_pct > 0),
    limits_source     text NOT NULL,
    limits_status     text NOT NULL,
    percent_of_limit  double precision,
    passed            boolean,
    zero_drift_per_day     double precision,
    span_drift_pct_per_day double precision,
    recorded_at       timestamptz NOT NULL,
    CHECK (started_at < span_at AND span_at < ended_at AND ended_at <= purge_ends_at),
    CONSTRAINT zero_span_checks_once UNIQUE (device_id, variable, started_at)
);
CREATE INDEX zero_span_checks_sensor_idx ON zero_span_checks (sensor_id, variable, started_at DESC);

COMMENT ON TABLE zero_span_checks IS
    'One row per zero/span check of an analyser (ingest/zero_span_eval.py): responses are the mean of the readings '
    'in the settled part of each phase, in unit (the raw unit the limits are in: ppb, ppm); the readings of the '
    'check and its purge time are stored in measurements flagged QC.MAINTENANCE (excluded from averages).';
COMMENT ON COLUMN zero_span_checks.source IS 'schedule: a configured schedule (zero_span.checks); status: the bit.';
COMMENT ON COLUMN zero_span_checks.zero_error IS 'zero_response - zero_expected, in unit.';
COMMENT ON COLUMN zero_span_checks.span_error_pct IS '100 * (span_response - span_expected) / span_expected.';
COMMENT ON COLUMN zero_span_checks.percent_of_limit IS
    'The worse of |zero_error| / zero_limit and |span_error_pct| / span_limit_pct, times 100: above 100 fails.';
COMMENT ON COLUMN zero_span_checks.passed IS 'true within both limits; false beyond either; NULL: no response.';
COMMENT ON COLUMN zero_span_checks.limits_status IS 'Verification status of the limits (unverified, ...).';
COMMENT ON COLUMN zero_span_checks.zero_drift_per_day IS
    'Least-squares slope of zero_error over the device''s recent checks, unit per day.';

-- the technicians' alert kind 'zero_span', added to whatever kinds the constraint allows when this runs (other
-- migrations may have added theirs): the constraint's array gets one more element
DO $$
DECLARE
    name text;
    def  text;
BEGIN
    SELECT c.conname, pg_get_constraintdef(c.oid) INTO name, def
    FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
    WHERE c.conrelid = 'alerts'::regclass AND c.contype = 'c' AND a.attname = 'kind';
    IF name IS NULL OR def LIKE '%''zero_span''%' THEN
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE alerts DROP CONSTRAINT %I', name);
    EXECUTE format('ALTER TABLE alerts ADD CONSTRAINT %I %s', name,
                   replace(def, 'ARRAY[', 'ARRAY[''zero_span''::text, '));
END
$$;
COMMENT ON COLUMN alerts.kind IS
    'threshold (an average against a norm level), index (IBOCA / US AQI category), no_data, flatline, device_fault, '
    'zero_span (equipment: technicians).';
