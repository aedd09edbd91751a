-- 0006_indices: air quality indices (hourly NowCast IBOCA / US AQI, daily US AQI), the late-data marks that
-- make the averaging job recompute the windows a late reading touches, and the bookkeeping that makes "each
-- window computed exactly once" checkable. Written by alerts/averaging_job.py and alerts/index_job.py (one
-- transaction per run), marked by storage/writer.py and storage/reprocess.py.
-- Never edit after release: add 0007_... instead.

-- ------------------------------------------------------------------------------------------------ indices

CREATE TABLE indices (
    sensor_id     text NOT NULL,
    index         text NOT NULL CHECK (index IN ('iboca', 'us_aqi')),
    pollutant     text NOT NULL,
    averaging     text NOT NULL,
    period_end    timestamptz NOT NULL,
    value         integer NOT NULL CHECK (value >= 0),
    level         integer NOT NULL CHECK (level >= 1),
    category      text NOT NULL,
    colour        text NOT NULL,
    action        text,
    concentration double precision NOT NULL,
    unit          text NOT NULL,
    indicative    boolean NOT NULL DEFAULT false,
    beyond_index  boolean NOT NULL DEFAULT false,
    dominant      boolean NOT NULL DEFAULT false,
    computed_at   timestamptz NOT NULL,
    CONSTRAINT indices_key UNIQUE (sensor_id, index, pollutant, averaging, period_end)
);
SELECT create_hypertable('indices', by_range('period_end', INTERVAL '30 days'));
CREATE INDEX indices_index_time_idx ON indices (index, averaging, period_end DESC);
COMMENT ON TABLE indices IS
    'Air quality sub-indices, stamped at the END of their period (period_end, like averages). Hourly: IBOCA '
    '(PM2.5) and US AQI (PM2.5, PM10) of the NowCast of the 12 hours ending at period_end (averaging nowcast). '
    'Daily US AQI of the calendar day (network time zone) ending at period_end: averaging day_24h (PM from the '
    'day average, SO2 above AQI 200), day_max_8h (O3, CO: largest valid 8-h mean ending in the day), day_max_1h '
    '(NO2, SO2, O3 1-h table: largest valid hour of the day). The reported index of a sensor and period is the '
    'row with dominant = true. Categories, colours and action levels come from indices.json.';
COMMENT ON COLUMN indices.index IS 'iboca (Res. Conjunta 2840/2023, PM2.5 only) or us_aqi (EPA, 2024 PM2.5 table).';
COMMENT ON COLUMN indices.pollutant IS 'Vocabulary code (sensors.variables): pm25, pm10, o3, co, so2, no2.';
COMMENT ON COLUMN indices.averaging IS 'nowcast, day_24h, day_max_8h or day_max_1h (alerts/indices.py).';
COMMENT ON COLUMN indices.level IS '1-based category number as indices.json numbers them (US AQI 1-6, IBOCA 1-5).';
COMMENT ON COLUMN indices.category IS 'Category name from indices.json (US AQI: Good...; IBOCA: Bajo...).';
COMMENT ON COLUMN indices.colour IS '#RRGGBB of the category, from indices.json.';
COMMENT ON COLUMN indices.action IS 'IBOCA action level (Prevención, Alerta fase 1, ...); NULL for the US AQI.';
COMMENT ON COLUMN indices.concentration IS
    'The truncated concentration looked up, in unit: µg/m³ for PM, ppm (O3, CO) or ppb (NO2, SO2) converted back '
    'from the stored µg/m³ at 24.45 L/mol.';
COMMENT ON COLUMN indices.indicative IS
    'true unless the sensor is a reference station (sensors.kind = station): microsensor values are indicative.';
COMMENT ON COLUMN indices.beyond_index IS 'Concentration above the top breakpoint: extrapolated (US) or capped (IBOCA).';
COMMENT ON COLUMN indices.dominant IS
    'true on the sub-index that sets the reported index of (sensor, index, period_end, hourly|daily).';
COMMENT ON COLUMN indices.computed_at IS 'The job clock''s now when this row was (re)computed.';

-- -------------------------------------------------------------------------------------------- late data

-- Readings written for a window that the averaging job may already have computed. storage/writer.py inserts
-- a mark in the SAME transaction as the measurements whose time is before job_watermarks.claimed_through
-- (holding pg_advisory_xact_lock_shared, see storage/writer.py); storage/reprocess.py marks every row it
-- changes. The job recomputes the marked hours (and the 8h/24h/day/year windows and indices holding them) and
-- deletes the marks it consumed, only if `mark` is unchanged (a newer write re-marks with a new number).
CREATE SEQUENCE dirty_slots_mark_seq;
CREATE TABLE dirty_slots (
    sensor_id  text NOT NULL,
    variable   text NOT NULL,
    slot_start timestamptz NOT NULL,
    mark       bigint NOT NULL DEFAULT nextval('dirty_slots_mark_seq'),
    PRIMARY KEY (sensor_id, variable, slot_start)
);
COMMENT ON TABLE dirty_slots IS
    'Late data: (sensor, variable) readings written into a 15-minute slot (date_bin from 2000-01-01 UTC) after the '
    'averaging job claimed it. Every UTC offset is a multiple of 15 minutes, so a slot lies inside one local hour.';

-- ------------------------------------------------------------------------------------------- bookkeeping

CREATE TABLE job_watermarks (
    job              text PRIMARY KEY,
    claimed_through  timestamptz,
    computed_through timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE job_watermarks IS
    'Per scheduled job: computed_through = every window ending at or before it has been computed (committed '
    'with the windows); claimed_through = the job has started computing up to here, so later writes before it '
    'are marked late (dirty_slots).';

CREATE TABLE window_computations (
    id          bigserial PRIMARY KEY,
    period      text NOT NULL,
    period_end  timestamptz NOT NULL,
    reason      text NOT NULL CHECK (reason IN ('due', 'late')),
    series      integer NOT NULL CHECK (series >= 0),
    computed_at timestamptz NOT NULL,
    backend_pid integer NOT NULL DEFAULT pg_backend_pid(),
    logged_at   timestamptz NOT NULL DEFAULT now()
);
-- a window is computed as due exactly once, whichever process computes it
CREATE UNIQUE INDEX window_computations_due_once ON window_computations (period, period_end) WHERE reason = 'due';
CREATE INDEX window_computations_end_idx ON window_computations (period_end DESC);
COMMENT ON TABLE window_computations IS
    'Log of every window computation: period (1h, 8h, 24h, day, year, nowcast, daily_aqi), its end, why (due: '
    'first computation, at most once per window; late: recomputed for late data), how many (sensor, variable) '
    'series, the job clock''s now, and the database backend that did it.';
