-- 0017_colocation_calibration: the linear_rh calibration kind (a·x + b·RH + c: co-location fits with relative
-- humidity as covariate, and the US-wide PurpleAir correction of Barkjohn et al. 2021), and the calibration
-- proposals a technician reviews and applies (aqnet calibrate propose|show|apply; ingest/colocation_fit.py).
-- Applied once by storage/migrate.py inside one transaction; never edit after release: add a later one instead.

ALTER TABLE calibrations DROP CONSTRAINT calibrations_kind_check;
ALTER TABLE calibrations ADD CONSTRAINT calibrations_kind_check
    CHECK (kind IN ('linear', 'polynomial', 'humidity', 'linear_rh'));
ALTER TABLE calibrations DROP CONSTRAINT calibrations_coefficients;
ALTER TABLE calibrations ADD CONSTRAINT calibrations_coefficients CHECK (
    array_ndims(coefficients) = 1
    AND array_position(coefficients, NULL) IS NULL
    AND NOT (coefficients && ARRAY['NaN', 'Infinity', '-Infinity']::double precision[])
    AND CASE kind
            WHEN 'linear' THEN cardinality(coefficients) = 2 AND coefficients[1] <> 0
            WHEN 'polynomial' THEN cardinality(coefficients) >= 2
            WHEN 'humidity' THEN cardinality(coefficients) = 1 AND coefficients[1] >= 0
            WHEN 'linear_rh' THEN cardinality(coefficients) = 3 AND coefficients[1] <> 0
        END);
COMMENT ON COLUMN calibrations.kind IS
    'linear: a·x + b; polynomial: Σ cᵢ·xⁱ; humidity: κ-Köhler correction x / (1 + (κ/1.65)·a_w/(1 − a_w)), '
    'a_w = RH/100 (Crilley et al. 2018, Atmos. Meas. Tech. 11, 709–720), for low-cost PM sensors; linear_rh: '
    'a·x + b·RH + c, RH in % (co-location fits; Barkjohn et al. 2021, Atmos. Meas. Tech. 14, 4617–4637).';
COMMENT ON COLUMN calibrations.coefficients IS
    'linear: {a, b}; polynomial: {c0, c1, …, cn}; humidity: {κ} (dimensionless); linear_rh: {a, b, c}. '
    'Values in unit.';

CREATE TABLE calibration_proposals (
    id                  bigserial PRIMARY KEY,
    created_at          timestamptz NOT NULL DEFAULT now(),
    created_by          text NOT NULL,
    sensor_id           text NOT NULL REFERENCES sensors (id),
    device_id           text NOT NULL REFERENCES devices (id),
    variable            text NOT NULL,
    reference_sensor_id text REFERENCES sensors (id),
    distance_m          double precision,
    method              text NOT NULL CHECK (method IN ('fit', 'barkjohn-2021')),
    kind                text NOT NULL CHECK (kind IN ('linear', 'linear_rh')),
    coefficients        double precision[] NOT NULL,
    unit                text NOT NULL,
    time_from           timestamptz NOT NULL,
    time_to             timestamptz NOT NULL,
    pairs               integer NOT NULL CHECK (pairs >= 0),
    report              jsonb NOT NULL,
    status              text NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'applied', 'rejected')),
    decided_at          timestamptz,
    decided_by          text,
    calibration_id      bigint REFERENCES calibrations (id),
    CHECK (time_from < time_to),
    CHECK ((status = 'proposed') = (decided_at IS NULL)),
    CHECK ((status = 'applied') = (calibration_id IS NOT NULL))
);
CREATE INDEX calibration_proposals_sensor_idx ON calibration_proposals (sensor_id, id DESC);
COMMENT ON TABLE calibration_proposals IS
    'Calibrations proposed from co-location with a reference station (or the cited Barkjohn et al. 2021 '
    'correction), with their figures against the EPA 2021 PM2.5 sensor targets (report). Never applied '
    'automatically: a technician applies one (aqnet calibrate apply), which adds a calibration version, writes '
    'the audit log and reprocesses the readings since its start.';
COMMENT ON COLUMN calibration_proposals.report IS
    'The fits (both forms), the figures before and after against the reference, each EPA target with pass/fail.';
