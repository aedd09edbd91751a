-- 0008_grafana_views: the read-only surface Grafana users query (deploy/grafana dashboards and ad-hoc panels).
-- Every object is named grafana_*, readable by aqnet_readonly, and documented with its units and the time
-- convention: timestamps are absolute (timestamptz; Grafana shows them in the browser's zone); a period is
-- stamped at its END (an hourly value at 10:00 covers [09:00, 10:00)); daily periods are calendar days in the
-- network's time zone (America/Bogota for the bundled network: the tz argument of the functions).
-- Concentrations are µg/m³ at 25 °C and 760 mmHg (Res. 2254/2017), CO included; other variables in the unit
-- column (VARIABLES.md canonical units). Microsensor values are indicative (indicative = true), never
-- compliance data. Never edit after release: add 0009_... instead.

-- ------------------------------------------------------------------------------------------------ QC flags

-- The bits of ingest/reading.py's QC IntFlag (never renumbered; tests/deploy/test_grafana_views.py checks this
-- table against the Python enum and EXCLUDED).
CREATE VIEW grafana_qc_flags (bit, value, name, excluded, meaning) AS VALUES
    (0, 1,   'OUT_OF_RANGE',   true,  'outside the physically possible range of the device profile'),
    (1, 2,   'NEGATIVE',       false, 'negative value (kept, suspect: small negatives are instrument noise)'),
    (2, 4,   'SPIKE',          false, 'rate of change above the variable''s limit (kept, suspect)'),
    (3, 8,   'FLATLINE',       false, 'identical values for too long (kept, suspect)'),
    (4, 16,  'STALE',          false, 'measurement time much older than its receive time'),
    (5, 32,  'DEVICE_INVALID', true,  'the device reported the value invalid'),
    (6, 64,  'MAINTENANCE',    true,  'device in maintenance, or inside a maintenance window'),
    (7, 128, 'CLOCK_SKEW',     true,  'device time ahead of receive time beyond the tolerance'),
    (8, 256, 'CALIBRATED',     false, 'a calibration was applied'),
    (9, 512, 'RECEIVE_TIME',   false, 'no usable device time: receive time used');
COMMENT ON VIEW grafana_qc_flags IS
    'The QC bits of measurements.flags (ingest/reading.py QC). excluded: a reading with this bit is left out of '
    'averages, indices, alerts and grafana_measurements_valid (EXCLUDED = 1|32|64|128 = 225).';

CREATE FUNCTION grafana_flag_names(flags integer) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(f.name ORDER BY f.bit), '{}'::text[]) FROM grafana_qc_flags f WHERE flags & f.value <> 0
$$;
COMMENT ON FUNCTION grafana_flag_names(integer) IS
    'The names of the QC bits set in a measurements.flags value, lowest bit first; {} for 0.';

-- ------------------------------------------------------------------------------------------------- sensors

CREATE VIEW grafana_sensors AS
SELECT s.id AS sensor_id, s.name, s.kind, s.kind <> 'station' AS indicative,
       s.lat AS lat_deg, s.lon AS lon_deg, s.elevation_m, s.locality, s.lifecycle
FROM sensors s;
COMMENT ON VIEW grafana_sensors IS
    'Measuring points: kind station (reference) or microsensor (indicative = true). lat_deg / lon_deg: WGS84 '
    'decimal degrees; elevation_m: metres above sea level.';

CREATE VIEW grafana_sensor_variables AS
SELECT DISTINCT d.sensor_id, v.variable, s.kind, s.kind <> 'station' AS indicative
FROM devices d CROSS JOIN LATERAL unnest(d.variables) AS v(variable)
JOIN sensors s ON s.id = d.sensor_id
WHERE d.active;
COMMENT ON VIEW grafana_sensor_variables IS
    'Which variables each sensor measures (its active devices): the source of dashboard template variables.';

-- ----------------------------------------------------------------------------------------- measurements

-- 225 = QC.OUT_OF_RANGE | DEVICE_INVALID | MAINTENANCE | CLOCK_SKEW (ingest/reading.py EXCLUDED); only the
-- primary device's readings of a variable count, as for the averages (alerts/averaging_job.py)
CREATE VIEW grafana_measurements_valid AS
SELECT m.time, m.sensor_id, m.variable, m.value, m.unit, m.flags, grafana_flag_names(m.flags) AS flag_names,
       m.device_id, s.kind <> 'station' AS indicative
FROM measurements m
JOIN sensors s ON s.id = m.sensor_id
LEFT JOIN primary_devices p ON p.sensor_id = m.sensor_id AND p.variable = m.variable
WHERE m.flags & 225 = 0 AND m.value IS NOT NULL AND (p.device_id IS NULL OR p.device_id = m.device_id);
COMMENT ON VIEW grafana_measurements_valid IS
    'Readings that count: no excluding QC bit (grafana_qc_flags.excluded), a value, the primary device. time is '
    'the measurement instant; value in unit (µg/m³ at 25 °C, 760 mmHg for concentrations). flag_names lists the '
    'non-excluding bits still set (NEGATIVE, SPIKE, CALIBRATED...). Filter with $__timeFilter(time).';

CREATE VIEW grafana_measurements_flagged AS
SELECT m.time, m.sensor_id, m.variable, m.value, m.unit, m.flags, grafana_flag_names(m.flags) AS flag_names,
       m.flags & 225 <> 0 AS excluded, m.device_id
FROM measurements m
WHERE m.flags <> 0;
COMMENT ON VIEW grafana_measurements_flagged IS
    'Every reading with a QC bit, decoded (flag_names); excluded = true when a bit keeps it out of averages.';

CREATE VIEW grafana_latest AS
SELECT sv.sensor_id, sv.variable, l.time, l.value, l.unit, l.flag_names, sv.indicative,
       extract(epoch FROM now() - l.time) AS age_s
FROM grafana_sensor_variables sv
CROSS JOIN LATERAL (
    SELECT v.time, v.value, v.unit, v.flag_names FROM grafana_measurements_valid v
    WHERE v.sensor_id = sv.sensor_id AND v.variable = sv.variable
    ORDER BY v.time DESC LIMIT 1) l;
COMMENT ON VIEW grafana_latest IS
    'The latest valid value per sensor and variable: time of the reading, value in unit, age_s = seconds since '
    'then (wall clock). Sensors and variables with no valid reading are absent.';

CREATE VIEW grafana_sensor_last_reading AS
SELECT s.id AS sensor_id, s.name, s.kind, s.lifecycle, max(l.time) AS last_time,
       max(l.received_at) AS last_received_at, extract(epoch FROM now() - max(l.received_at)) AS age_s
FROM sensors s
JOIN grafana_sensor_variables sv ON sv.sensor_id = s.id
CROSS JOIN LATERAL (
    SELECT m.time, m.received_at FROM measurements m
    WHERE m.sensor_id = sv.sensor_id AND m.variable = sv.variable ORDER BY m.time DESC LIMIT 1) l
GROUP BY s.id, s.name, s.kind, s.lifecycle;
COMMENT ON VIEW grafana_sensor_last_reading IS
    'Per sensor: the newest reading of any quality (last_time: measurement time; last_received_at: when aqnet '
    'received it) and age_s, seconds since it was received (wall clock): daemon health.';

-- -------------------------------------------------------------------------------------------- averages

CREATE VIEW grafana_averages AS
SELECT a.period_end AS time, a.sensor_id, a.variable, a.period, a.period_start, a.period_end, a.value, a.unit,
       a.coverage AS coverage_fraction, a.samples, a.valid, s.kind <> 'station' AS indicative
FROM averages a JOIN sensors s ON s.id = a.sensor_id;
COMMENT ON VIEW grafana_averages IS
    'Averages stamped at the END of their period (time = period_end): 1h, 8h and 24h rolling means ending on the '
    'hour, day = calendar day in the network time zone, year. value in unit; coverage_fraction 0..1 of the period '
    'covered by valid readings; valid = the completeness rule is met (filter on it for compliance).';

-- ----------------------------------------------------------------------------------------------- indices

CREATE VIEW grafana_index AS
SELECT i.period_end AS time, i.sensor_id, i.index, i.pollutant, i.value AS index_value, i.level, i.category,
       i.colour, i.action, i.concentration, i.unit, i.indicative, s.kind, s.lat AS lat_deg, s.lon AS lon_deg
FROM indices i JOIN sensors s ON s.id = i.sensor_id
WHERE i.dominant AND i.averaging = 'nowcast';
COMMENT ON VIEW grafana_index IS
    'Hourly index per sensor (the dominant sub-index of the NowCast of the 12 hours ending at time): index iboca '
    '(0..500, PM2.5, Res. Conjunta 2840/2023) or us_aqi; category, colour (#RRGGBB) and action from indices.json. '
    'indicative = true for microsensors.';

CREATE FUNCTION grafana_index_at(at timestamptz, index_name text DEFAULT 'iboca')
RETURNS TABLE (sensor_id text, name text, kind text, indicative boolean, lat_deg double precision,
               lon_deg double precision, locality text, "time" timestamptz, index_value integer, level integer,
               category text, colour text, action text)
LANGUAGE sql STABLE AS $$
    SELECT s.id, s.name, s.kind, l.indicative, s.lat, s.lon, s.locality, l.period_end, l.value, l.level, l.category,
           l.colour, l.action
    FROM sensors s
    CROSS JOIN LATERAL (
        SELECT i.period_end, i.value, i.level, i.category, i.colour, i.action, i.indicative FROM indices i
        WHERE i.sensor_id = s.id AND i.index = index_name AND i.averaging = 'nowcast' AND i.dominant
          AND i.period_end <= at AND i.period_end > at - interval '3 hours'
        ORDER BY i.period_end DESC LIMIT 1) l
$$;
COMMENT ON FUNCTION grafana_index_at(timestamptz, text) IS
    'Per sensor, the latest hourly index (iboca: 0..500; us_aqi) ending at or before `at` and at most 3 h old, '
    'with its category and colour: the geomap''s "current" index at the end of the dashboard''s range '
    '($__timeTo()). Sensors with no index then (no PM2.5, silent) are absent.';

CREATE VIEW grafana_index_current AS SELECT * FROM grafana_index_at(now());
COMMENT ON VIEW grafana_index_current IS 'grafana_index_at(now(), ''iboca''): the IBOCA now (wall clock).';

-- ------------------------------------------------------------------------------------------- exceedances

CREATE VIEW grafana_exceedance_periods AS
SELECT a.period_end AS time, a.sensor_id, a.variable, a.period, a.period_start, a.period_end,
       a.value AS value_ugm3, l.limit_ugm3, l.source, s.kind <> 'station' AS indicative
FROM averages a
JOIN norm_limits l ON l.variable = a.variable AND l.period = a.period
JOIN sensors s ON s.id = a.sensor_id
WHERE a.valid AND a.value > l.limit_ugm3;
COMMENT ON VIEW grafana_exceedance_periods IS
    'Each valid average above its Res. 2254/2017 Tabla 1 limit (norm_limits): period day (calendar day, network '
    'time zone), 1h, 8h (rolling, end-stamped); value_ugm3 and limit_ugm3 in µg/m³ at 25 °C, 760 mmHg.';

CREATE VIEW grafana_exceedances_yearly AS
SELECT e.sensor_id, s.name, s.kind <> 'station' AS indicative, e.variable, e.period, e.year, e.exceedances,
       e.valid_periods, e.limit_ugm3, e.source
FROM exceedances_yearly e JOIN sensors s ON s.id = e.sensor_id;
COMMENT ON VIEW grafana_exceedances_yearly IS
    'exceedances_yearly (0007) with the sensor''s name: exceedances per sensor, variable, period (day, 1h, 8h) '
    'and calendar year (America/Bogota); valid_periods = valid averages that year; limit_ugm3 in µg/m³.';

-- --------------------------------------------------------------------------------------- gap-filled series

-- TimescaleDB's Apache edition has no time_bucket_gapfill: generate_series makes every bucket, empty ones NULL.
-- Buckets are laid in the wall-clock time of tz (so 1-day buckets are calendar days there) and stamped at their
-- end. Across a DST change (none in America/Bogota) a sub-daily bucket's local bounds can repeat or skip.
CREATE FUNCTION grafana_series_gapfilled(sensor text, var text, t_from timestamptz, t_to timestamptz,
                                         bucket interval, tz text DEFAULT 'America/Bogota')
RETURNS TABLE ("time" timestamptz, value double precision, samples integer)
LANGUAGE sql STABLE AS $$
    WITH b AS (
        SELECT (local AT TIME ZONE tz) AS b_start, ((local + bucket) AT TIME ZONE tz) AS b_end
        FROM generate_series(date_bin(bucket, t_from AT TIME ZONE tz, timestamp '2000-01-01'),
                             t_to AT TIME ZONE tz - bucket, bucket) AS local
    )
    SELECT b.b_end, avg(v.value), count(v.value)::integer
    FROM b LEFT JOIN grafana_measurements_valid v
        ON v.sensor_id = sensor AND v.variable = var AND v.time >= b.b_start AND v.time < b.b_end
    GROUP BY b.b_end ORDER BY b.b_end
$$;
COMMENT ON FUNCTION grafana_series_gapfilled(text, text, timestamptz, timestamptz, interval, text) IS
    'Mean of the valid readings of (sensor, variable) in every bucket that ends in (t_from, t_to], stamped at '
    'the bucket END; value NULL and samples 0 where there are none (a gap stays visible). Buckets are aligned on '
    'midnight in tz (daily buckets = calendar days in the network time zone). value in the variable''s unit.';

-- ------------------------------------------------------------------------------------- nearest station

-- haversine on a sphere of radius 6371.0088 km (the IUGG mean Earth radius)
CREATE VIEW grafana_nearest_station AS
SELECT ms.sensor_id AS microsensor_id, ms.variable, st.station_id, st.distance_km
FROM grafana_sensor_variables ms
JOIN sensors m ON m.id = ms.sensor_id
CROSS JOIN LATERAL (
    SELECT s.id AS station_id,
           2 * 6371.0088 * asin(sqrt(power(sin(radians(s.lat - m.lat) / 2), 2)
               + cos(radians(m.lat)) * cos(radians(s.lat)) * power(sin(radians(s.lon - m.lon) / 2), 2)))
               AS distance_km
    FROM sensors s JOIN grafana_sensor_variables sv ON sv.sensor_id = s.id AND sv.variable = ms.variable
    WHERE s.kind = 'station'
    ORDER BY 2 LIMIT 1) st
WHERE ms.kind = 'microsensor';
COMMENT ON VIEW grafana_nearest_station IS
    'For each microsensor and variable, the nearest reference station measuring that variable (great-circle '
    'distance_km, haversine, R = 6371.0088 km): the co-location a microsensor is compared with.';

-- ------------------------------------------------------------------------------------------------ alerts

CREATE VIEW grafana_alert_annotations AS
SELECT a.started_at AS time, coalesce(a.resolved_at, now()) AS timeend, a.id AS alert_id, a.rule, a.sensor_id,
       a.variable, a.level, a.state, a.severity, a.audience, a.kind, a.indicative, a.value, a.threshold, a.unit,
       format('%s: %s %s (%s %s, threshold %s)%s', a.rule, a.level, a.state, round(a.value::numeric, 1),
              coalesce(a.unit, ''), a.threshold, CASE WHEN a.indicative THEN ' [indicative]' ELSE '' END) AS text,
       concat_ws(',', a.severity, a.audience, a.kind, a.variable, a.sensor_id) AS tags
FROM alerts a;
COMMENT ON VIEW grafana_alert_annotations IS
    'Alert episodes as Grafana region annotations: time = started_at, timeend = resolved_at (now() while open), '
    'text, tags (comma-separated: severity, audience, kind, variable, sensor). value/threshold in unit.';

CREATE VIEW grafana_alert_event_annotations AS
SELECT e.time, a.id AS alert_id, a.rule, a.sensor_id, a.variable, e.kind, e.level, a.severity, a.audience,
       coalesce(e.note, e.kind) AS text, concat_ws(',', e.kind, a.severity, a.variable, a.sensor_id) AS tags
FROM alert_events e JOIN alerts a ON a.id = e.alert_id;
COMMENT ON VIEW grafana_alert_event_annotations IS
    'Every alert transition (raised, escalated, acknowledged, resolved, note...) as a point annotation.';

-- ------------------------------------------------------------------------------------------------ health

CREATE VIEW grafana_dead_letters AS
SELECT d.received_at AS time, d.source, d.reason, d.sensor_id, left(d.detail, 200) AS detail
FROM dead_letters d;
COMMENT ON VIEW grafana_dead_letters IS
    'Dead letters without their payload bytes: what aqnet could not store (source, reason), when it arrived.';

CREATE VIEW grafana_job_lag AS
SELECT w.job, w.computed_through, extract(epoch FROM now() - w.computed_through) AS lag_s, w.updated_at
FROM job_watermarks w;
COMMENT ON VIEW grafana_job_lag IS
    'Per scheduled job: every window ending at or before computed_through is computed; lag_s = seconds behind '
    'the wall clock (large under an accelerated `aqnet up`, whose simulated clock runs ahead of nothing).';

-- ------------------------------------------------------------------------------------------------ grants

GRANT SELECT ON grafana_qc_flags, grafana_sensors, grafana_sensor_variables, grafana_measurements_valid,
    grafana_measurements_flagged, grafana_latest, grafana_sensor_last_reading, grafana_averages, grafana_index,
    grafana_index_current, grafana_exceedance_periods, grafana_exceedances_yearly, grafana_nearest_station,
    grafana_alert_annotations, grafana_alert_event_annotations, grafana_dead_letters, grafana_job_lag
    TO aqnet_readonly;
GRANT EXECUTE ON FUNCTION grafana_flag_names(integer), grafana_index_at(timestamptz, text),
    grafana_series_gapfilled(text, text, timestamptz, timestamptz, interval, text) TO aqnet_readonly;
-- API token hashes are no business of a dashboard (0001 granted SELECT on every table)
REVOKE SELECT ON api_tokens FROM aqnet_readonly;
