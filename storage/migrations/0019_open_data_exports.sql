-- 0019_open_data_exports: the record of the daily open-data exports (issue 22), and the annual limits of
-- Res. 2254/2017 Tabla 1 in norm_limits so the officers' exceedance views (exceedances(tz), exceedances_yearly,
-- grafana_exceedance_periods, grafana_exceedances_yearly) show the annual means above them.
-- open_data_exports is written by storage/exports_store.py (alerts/opendata/export_job.py). Never edit after
-- release: add a later migration instead.

-- --------------------------------------------------------------------------------------------------- exports

CREATE TABLE open_data_exports (
    day          date NOT NULL,
    version      integer NOT NULL CHECK (version >= 1),
    exported_at  timestamptz NOT NULL,
    digest       text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
    change_note  text NOT NULL,
    directory    text NOT NULL,
    files        jsonb NOT NULL DEFAULT '[]',
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    decisions_through bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, version),
    CHECK (period_start < period_end)
);
COMMENT ON TABLE open_data_exports IS
    'One row per published version of a day''s open-data export (the network''s local day [period_start, '
    'period_end)): version 1 when first exported, a new version with a change note when a later validation '
    'decision or late data changed the content (digest: sha256 over the data files).';
COMMENT ON COLUMN open_data_exports.digest IS 'sha256 of the data files in a fixed order (alerts/opendata/versions.py).';
COMMENT ON COLUMN open_data_exports.change_note IS 'What this version changed against the previous one (first: "first export").';
COMMENT ON COLUMN open_data_exports.directory IS 'The version''s directory, relative to exports.directory.';
COMMENT ON COLUMN open_data_exports.decisions_through IS
    'The highest validation_decisions.id when the version was rendered: a later decision covering the day has a '
    'higher id (ids, not times, so a simulated clock cannot hide one).';
COMMENT ON COLUMN open_data_exports.files IS
    'The version''s files: [{name, resource, table, media_type, bytes, hash, rows}] (hash: sha256:<hex>).';

GRANT SELECT ON open_data_exports TO aqnet_readonly;

-- ----------------------------------------------------------------------------------------- annual limits

ALTER TABLE norm_limits DROP CONSTRAINT norm_limits_period_check;
ALTER TABLE norm_limits ADD CONSTRAINT norm_limits_period_check CHECK (period IN ('1h', '8h', 'day', 'year'));
COMMENT ON TABLE norm_limits IS
    'Maximum permissible levels, µg/m³ at 25 °C and 760 mmHg (Res. 2254/2017 Art. 2 Tabla 1, status '
    'verified_secondary in sensors/domain/norms.json). period day: the norm''s 24-hour limit, evaluated on the '
    'calendar day in the network''s time zone; period year: the annual limit, evaluated on the valid calendar-year '
    'mean (averages period year: >= 75 % of the days valid). Exceedance: value > limit (aqnet convention, norms.json).';
INSERT INTO norm_limits (variable, period, limit_ugm3, source) VALUES
    ('pm10', 'year', 50, 'Res. 2254/2017 Art. 2 Tabla 1: PM10 annual'),
    ('pm25', 'year', 25, 'Res. 2254/2017 Art. 2 Tabla 1: PM2.5 annual'),
    ('no2',  'year', 60, 'Res. 2254/2017 Art. 2 Tabla 1: NO2 annual');
