-- 0007_alert_delivery: alerts that reach people. What an alert is about (kind, audience, scope key, locality,
-- severity, the evaluated period and its coverage), who acknowledged or resolved it, every transition as a typed
-- event with its actor, the suppressions (no air-quality alert from invalid or maintenance data), the delivery
-- outbox (one delivery per transition and channel, surviving restarts), and the norm's limits with the
-- exceedance counts Grafana and the API read.
-- Written by alerts/evaluate.py (rules), storage/alerts_store.py (acknowledge, resolve, notes, outbox) and
-- alerts/dispatch.py (delivery). Never edit after release: add 0008_... instead.

-- ------------------------------------------------------------------------------------------------- alerts

ALTER TABLE alerts
    ADD COLUMN kind         text NOT NULL DEFAULT 'threshold'
        CHECK (kind IN ('threshold', 'index', 'no_data', 'flatline', 'device_fault')),
    ADD COLUMN audience     text NOT NULL DEFAULT 'officers' CHECK (audience IN ('officers', 'technicians')),
    ADD COLUMN scope_key    text,
    ADD COLUMN locality     text,
    ADD COLUMN indicative   boolean NOT NULL DEFAULT false,
    ADD COLUMN severity     text NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
    ADD COLUMN period       text,
    ADD COLUMN period_start timestamptz,
    ADD COLUMN period_end   timestamptz,
    ADD COLUMN coverage     double precision CHECK (coverage BETWEEN 0 AND 1),
    ADD COLUMN resolved_by  text,
    ADD COLUMN escalated_at timestamptz,
    ADD CONSTRAINT alerts_scope CHECK (scope IN ('sensor', 'locality', 'network'));
UPDATE alerts SET scope_key = coalesce(sensor_id, scope) WHERE scope_key IS NULL;
ALTER TABLE alerts ALTER COLUMN scope_key SET NOT NULL;
-- one open episode per rule and scope: re-running an evaluation can never open a second one
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (rule, scope, scope_key) WHERE state <> 'resolved';
CREATE INDEX alerts_state_idx ON alerts (state, audience, started_at DESC);

COMMENT ON COLUMN alerts.kind IS
    'threshold (an average against a norm level), index (IBOCA / US AQI category), no_data, flatline, device_fault '
    '(equipment: technicians).';
COMMENT ON COLUMN alerts.audience IS 'officers (air quality) or technicians (equipment): who it is routed to.';
COMMENT ON COLUMN alerts.scope_key IS 'The sensor id (scope sensor), the locality name (scope locality) or network.';
COMMENT ON COLUMN alerts.sensor_id IS
    'The sensor whose value is reported: the scope''s sensor, or the worst sensor of a locality / the network.';
COMMENT ON COLUMN alerts.indicative IS 'true for alerts from microsensors: indicative, not compliance data.';
COMMENT ON COLUMN alerts.severity IS 'info, warning or critical: the current level''s severity (rules file).';
COMMENT ON COLUMN alerts.period IS 'The averaging period evaluated (1h, 8h, 24h, day), NULL for equipment alerts.';
COMMENT ON COLUMN alerts.period_end IS 'End of the evaluated period (periods are stamped at their end).';
COMMENT ON COLUMN alerts.coverage IS 'Fraction (0..1) of the evaluated period covered by valid readings.';
COMMENT ON COLUMN alerts.value IS 'The last evaluated value, in unit (µg/m³ at 25 °C, 760 mmHg for concentrations).';
COMMENT ON COLUMN alerts.escalated_at IS 'When the alert was last escalated for want of an acknowledgement.';

ALTER TABLE alert_events
    ADD COLUMN kind  text NOT NULL DEFAULT 'raised'
        CHECK (kind IN ('raised', 'escalated', 'unacknowledged', 'acknowledged', 'resolved', 'note')),
    ADD COLUMN actor text,
    ADD COLUMN via   text,
    ADD COLUMN from_level text,
    ADD COLUMN severity   text CHECK (severity IN ('info', 'warning', 'critical'));
COMMENT ON COLUMN alert_events.kind IS
    'raised, escalated (a higher level), unacknowledged (escalated for want of an acknowledgement), acknowledged, '
    'resolved (by the rule or by an officer), note.';
COMMENT ON COLUMN alert_events.actor IS 'Who acted (acknowledged, resolved, noted); NULL for the rule engine.';
COMMENT ON COLUMN alert_events.via IS 'Where they acted: cli, api, link (signed link in a message); NULL: rules.';

-- ------------------------------------------------------------------------------------------- suppressions

CREATE TABLE alert_suppressions (
    id            bigserial PRIMARY KEY,
    rule          text NOT NULL,
    scope         text NOT NULL,
    scope_key     text NOT NULL,
    sensor_id     text,
    variable      text,
    period_end    timestamptz NOT NULL,
    value         double precision,
    level         text,
    reason        text NOT NULL CHECK (reason IN ('maintenance', 'invalid', 'device_invalid')),
    detail        text NOT NULL DEFAULT '',
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alert_suppressions_key UNIQUE (rule, scope, scope_key, period_end)
);
CREATE INDEX alert_suppressions_time_idx ON alert_suppressions (period_end DESC);
COMMENT ON TABLE alert_suppressions IS
    'A level a rule would have raised or escalated but did not: the data were in a maintenance window, flagged '
    'invalid by the analyser, or the average was incomplete (reason). One row per rule, scope and period.';

-- ------------------------------------------------------------------------------------------------ outbox

CREATE TABLE alert_outbox (
    id              bigserial PRIMARY KEY,
    event_id        bigint NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    alert_id        bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel         text NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz,
    CONSTRAINT alert_outbox_key UNIQUE (event_id, channel)
);
CREATE INDEX alert_outbox_due_idx ON alert_outbox (channel, next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_outbox_alert_idx ON alert_outbox (alert_id);
COMMENT ON TABLE alert_outbox IS
    'One delivery per alert transition (alert_events row) and configured channel. pending until the channel '
    'accepted it (delivered) or it failed alerts.max_attempts times or permanently (dead: the delivery dead '
    'letter). Times are wall-clock.';

CREATE TABLE alert_channels (
    name       text PRIMARY KEY,
    first_seen timestamptz NOT NULL
);
COMMENT ON TABLE alert_channels IS
    'Delivery channels (alert_outbox.channel) and when each was first configured: a channel added later is only '
    'given events from a short backlog before first_seen onwards, never older history (alerts/dispatch.py).';

-- ----------------------------------------------------------------------------------- limits, exceedances

CREATE TABLE norm_limits (
    variable  text NOT NULL,
    period    text NOT NULL CHECK (period IN ('1h', '8h', 'day')),
    limit_ugm3 double precision NOT NULL CHECK (limit_ugm3 > 0),
    source    text NOT NULL,
    PRIMARY KEY (variable, period)
);
COMMENT ON TABLE norm_limits IS
    'Maximum permissible levels, µg/m³ at 25 °C and 760 mmHg (Res. 2254/2017 Art. 2 Tabla 1, status '
    'verified_secondary in sensors/domain/norms.json). period day: the norm''s 24-hour limit, evaluated on the '
    'calendar day in the network''s time zone. Exceedance: value > limit (aqnet convention, norms.json).';
INSERT INTO norm_limits (variable, period, limit_ugm3, source) VALUES
    ('pm10', 'day', 75,    'Res. 2254/2017 Art. 2 Tabla 1: PM10 24 h, from 2018-07-01'),
    ('pm25', 'day', 37,    'Res. 2254/2017 Art. 2 Tabla 1: PM2.5 24 h, from 2018-07-01'),
    ('so2',  'day', 50,    'Res. 2254/2017 Art. 2 Tabla 1: SO2 24 h'),
    ('so2',  '1h',  100,   'Res. 2254/2017 Art. 2 Tabla 1: SO2 1 h'),
    ('no2',  '1h',  200,   'Res. 2254/2017 Art. 2 Tabla 1: NO2 1 h'),
    ('o3',   '8h',  100,   'Res. 2254/2017 Art. 2 Tabla 1: O3 8 h'),
    ('co',   '8h',  5000,  'Res. 2254/2017 Art. 2 Tabla 1: CO 8 h'),
    ('co',   '1h',  35000, 'Res. 2254/2017 Art. 2 Tabla 1: CO 1 h');

-- Exceedance counts per sensor, variable, averaging period and year. Conventions, stated here as in README:
--   day: a day counts when its calendar-day average is valid (>= 18 valid hours) and > the 24-hour limit;
--   1h:  an hour counts when its hourly average is valid and > the 1-hour limit;
--   8h:  an hour counts when the valid 8-hour mean ending at it is > the 8-hour limit (rolling, end-stamped).
-- The year is the calendar year of the period's START in time zone `tz` (a day ending at 00:00 on 1 January
-- belongs to the year before).
CREATE FUNCTION exceedances(tz text DEFAULT 'America/Bogota')
RETURNS TABLE (sensor_id text, variable text, period text, year integer, exceedances bigint,
               valid_periods bigint, limit_ugm3 double precision, source text)
LANGUAGE sql STABLE AS $$
    SELECT a.sensor_id, a.variable, l.period,
           extract(year FROM a.period_start AT TIME ZONE tz)::integer AS year,
           count(*) FILTER (WHERE a.value > l.limit_ugm3) AS exceedances,
           count(*) AS valid_periods, l.limit_ugm3, l.source
    FROM averages a
    JOIN norm_limits l ON l.variable = a.variable AND l.period = a.period
    WHERE a.valid
    GROUP BY a.sensor_id, a.variable, l.period, 4, l.limit_ugm3, l.source
$$;
COMMENT ON FUNCTION exceedances(text) IS
    'Exceedances of Res. 2254/2017 Tabla 1 limits per sensor, variable, period (day, 1h, 8h) and calendar year '
    'in time zone tz: days with a valid daily average above the 24-hour limit, hours with a valid 1-h (or 8-h '
    'rolling) average above the limit. valid_periods: how many valid periods the year has.';
CREATE VIEW exceedances_yearly AS SELECT * FROM exceedances('America/Bogota');
COMMENT ON VIEW exceedances_yearly IS
    'exceedances() in America/Bogota (the bundled network''s time zone); call exceedances(tz) for another.';

GRANT SELECT ON alert_suppressions, alert_outbox, alert_channels, norm_limits, exceedances_yearly TO aqnet_readonly;
GRANT EXECUTE ON FUNCTION exceedances(text) TO aqnet_readonly;
