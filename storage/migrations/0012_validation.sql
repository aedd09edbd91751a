-- 0012_validation: validation by people, and the record of every alert decision (issue 21).
-- validation_decisions: append-only decisions (validate / invalidate with a reason / undo) on a period of a series,
-- with who took them (the API token's name and role), when, why and what they changed; validation_in_force: the
-- decisions no undo removed; measurement_verification: every stored value with its three levels (raw, QC, person)
-- and its e-Reporting verification and validity flags (ingest/validation.py has the mapping and the rule: the
-- latest decision in force covering a value decides). alert_events gain the transition 'evidence_invalidated',
-- the actor's role, the decision behind it, and the evidence (sensor, variable, period, coverage, threshold, unit,
-- legal source) copied from the alert as each transition is recorded; alert_record(show_names) is the public
-- record of the decisions on alerts, showing the actor's role, not the name, unless asked.
-- Written by storage/validation.py. Never edit after release: add a later migration instead.

-- ----------------------------------------------------------------------------------------------- decisions

CREATE TABLE validation_decisions (
    id          bigserial PRIMARY KEY,
    decided_at  timestamptz NOT NULL,
    actor       text NOT NULL CHECK (actor <> ''),
    actor_role  text NOT NULL CHECK (actor_role IN ('technician', 'officer')),
    via         text NOT NULL CHECK (via IN ('cli', 'api')),
    action      text NOT NULL CHECK (action IN ('validate', 'invalidate', 'undo')),
    sensor_id   text NOT NULL REFERENCES sensors (id),
    device_id   text REFERENCES devices (id),
    variable    text,
    time_from   timestamptz NOT NULL,
    time_to     timestamptz NOT NULL,
    reason      text CHECK (reason IN ('analyser_fault', 'calibration', 'maintenance', 'local_source', 'other')),
    reason_text text NOT NULL DEFAULT '',
    undoes      bigint UNIQUE REFERENCES validation_decisions (id),
    effect      jsonb NOT NULL DEFAULT '{}',
    db_user     text NOT NULL DEFAULT current_user,
    CONSTRAINT validation_decisions_period CHECK (time_from < time_to),
    CONSTRAINT validation_decisions_reason CHECK ((action = 'invalidate') = (reason IS NOT NULL)),
    CONSTRAINT validation_decisions_other CHECK (reason IS DISTINCT FROM 'other' OR btrim(reason_text) <> ''),
    CONSTRAINT validation_decisions_undo CHECK ((action = 'undo') = (undoes IS NOT NULL))
);
CREATE INDEX validation_decisions_sensor_idx ON validation_decisions (sensor_id, time_from, time_to);
CREATE INDEX validation_decisions_time_idx ON validation_decisions (decided_at DESC);
COMMENT ON TABLE validation_decisions IS
    'Validation by people, append-only (UPDATE and DELETE refused): a technician or officer validated a period '
    'of a series, invalidated it with a reason, or undid an earlier decision (undoes; an undo repeats its scope '
    'and period). Of the decisions in force (validation_in_force) covering a value, the latest (highest id) '
    'decides. Raw values are never changed; averages and indices are recomputed through dirty_slots.';
COMMENT ON COLUMN validation_decisions.actor IS 'The API token''s name (its owner) that took the decision.';
COMMENT ON COLUMN validation_decisions.actor_role IS 'The token''s role when it acted: technician or officer.';
COMMENT ON COLUMN validation_decisions.via IS 'cli (aqnet validation ...) or api (HTTP).';
COMMENT ON COLUMN validation_decisions.device_id IS 'NULL: every device of the sensor.';
COMMENT ON COLUMN validation_decisions.variable IS 'NULL: every variable (of the device, or of the sensor).';
COMMENT ON COLUMN validation_decisions.time_from IS 'Start of the period (inclusive), by measurement time.';
COMMENT ON COLUMN validation_decisions.time_to IS 'End of the period (exclusive).';
COMMENT ON COLUMN validation_decisions.reason IS
    'Why invalid: analyser_fault, calibration (or a zero/span check), maintenance, local_source, other (the text '
    'says what). NULL for validate and undo.';
COMMENT ON COLUMN validation_decisions.effect IS
    'What the decision changed when taken: readings covered and changed (per variable), 15-minute slots marked '
    'for recomputation, the open alerts whose evidence it invalidated (or restored).';

CREATE FUNCTION validation_decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'validation_decisions is append-only: % refused (undo a decision with a new one)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER validation_decisions_append_only BEFORE UPDATE OR DELETE ON validation_decisions
    FOR EACH ROW EXECUTE FUNCTION validation_decisions_append_only();

CREATE VIEW validation_in_force AS
SELECT d.id, d.action, d.sensor_id, d.device_id, d.variable, d.time_from, d.time_to, d.reason, d.reason_text,
       d.decided_at, d.actor_role
FROM validation_decisions d
WHERE d.action <> 'undo' AND NOT EXISTS (SELECT 1 FROM validation_decisions u WHERE u.undoes = d.id);
COMMENT ON VIEW validation_in_force IS
    'Validations and invalidations no undo removed. The latest one covering a value decides it.';

-- Every stored value with its three levels and its e-Reporting flags (ingest/validation.py, docs/operators/
-- validation.md). 225 = ingest.reading.EXCLUDED (OUT_OF_RANGE | DEVICE_INVALID | MAINTENANCE | CLOCK_SKEW), 64 =
-- QC.MAINTENANCE: bits are never renumbered (measurements.flags).
CREATE VIEW measurement_verification AS
SELECT m.time, m.sensor_id, m.device_id, m.variable, m.raw_value, m.raw_unit, m.value, m.unit, m.flags,
       (m.flags & 225) = 0 AS qc_valid,
       d.id AS decision_id, d.action AS decision, d.reason,
       CASE WHEN d.id IS NULL THEN 3 ELSE 1 END AS verification,
       CASE WHEN d.action = 'invalidate' THEN CASE WHEN d.reason IN ('maintenance', 'calibration') THEN -99 ELSE -1 END
            WHEN (m.flags & 225) = 0 THEN 1
            WHEN (m.flags & 64) <> 0 THEN -99
            ELSE -1 END AS validity
FROM measurements m
LEFT JOIN LATERAL (
    SELECT f.id, f.action, f.reason FROM validation_in_force f
    WHERE f.sensor_id = m.sensor_id AND (f.device_id IS NULL OR f.device_id = m.device_id)
      AND (f.variable IS NULL OR f.variable = m.variable) AND f.time_from <= m.time AND m.time < f.time_to
    ORDER BY f.id DESC LIMIT 1) d ON true;
COMMENT ON VIEW measurement_verification IS
    'Each measurement: raw (raw_value, raw_unit), automatically checked (flags, qc_valid), validated by a person '
    '(decision: validate | invalidate | NULL, decision_id, reason), and the e-Reporting verification (1 verified, '
    '3 not verified) and validity (1 valid, -1 not valid, -99 not valid: maintenance or calibration) flags. Filter '
    'on sensor_id, variable and time.';

-- ------------------------------------------------------------------------------------ the alert record

ALTER TABLE alert_events DROP CONSTRAINT alert_events_kind_check;
ALTER TABLE alert_events
    ADD CONSTRAINT alert_events_kind_check CHECK (kind IN ('raised', 'escalated', 'unacknowledged', 'acknowledged',
                                                          'resolved', 'note', 'evidence_invalidated')),
    ADD COLUMN actor_role      text CHECK (actor_role IN ('system', 'technician', 'officer')),
    ADD COLUMN decision_id     bigint REFERENCES validation_decisions (id),
    ADD COLUMN sensor_id       text,
    ADD COLUMN variable        text,
    ADD COLUMN period          text,
    ADD COLUMN period_start    timestamptz,
    ADD COLUMN period_end      timestamptz,
    ADD COLUMN coverage        double precision,
    ADD COLUMN threshold       double precision,
    ADD COLUMN unit            text,
    ADD COLUMN source          text;
COMMENT ON COLUMN alert_events.kind IS
    'raised, escalated (a higher level), unacknowledged (escalated for want of an acknowledgement), acknowledged, '
    'resolved (by the rule or by an officer), note, evidence_invalidated (a person invalidated data the alert '
    'rests on: decision_id; the alert stays open until its rule resolves it).';
COMMENT ON COLUMN alert_events.actor_role IS
    'system (the rule engine), officer (acknowledge, resolve, note: officers only) or the role of the token that '
    'took the validation decision. What a public view shows instead of the actor''s name.';
COMMENT ON COLUMN alert_events.decision_id IS 'validation_decisions.id behind an evidence_invalidated event.';
COMMENT ON COLUMN alert_events.sensor_id IS
    'Evidence, copied from the alert when the event was recorded: the sensor, variable, averaging period and its '
    'bounds, coverage, the level''s threshold, unit and legal source (threshold and source when the event''s level '
    'is the alert''s level then).';

UPDATE alert_events SET actor_role = CASE WHEN actor IS NULL THEN 'system' ELSE 'officer' END;

CREATE FUNCTION alert_events_evidence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    a alerts%ROWTYPE;
BEGIN
    SELECT * INTO a FROM alerts WHERE id = NEW.alert_id;
    NEW.actor_role := coalesce(NEW.actor_role, CASE WHEN NEW.actor IS NULL THEN 'system' ELSE 'officer' END);
    NEW.sensor_id := coalesce(NEW.sensor_id, a.sensor_id);
    NEW.variable := coalesce(NEW.variable, a.variable);
    NEW.period := coalesce(NEW.period, a.period);
    NEW.period_start := coalesce(NEW.period_start, a.period_start);
    NEW.period_end := coalesce(NEW.period_end, a.period_end);
    NEW.coverage := coalesce(NEW.coverage, a.coverage);
    NEW.unit := coalesce(NEW.unit, a.unit);
    IF NEW.level IS NULL OR NEW.level = a.level THEN
        NEW.threshold := coalesce(NEW.threshold, a.threshold);
        NEW.source := coalesce(NEW.source, a.source);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER alert_events_evidence BEFORE INSERT ON alert_events
    FOR EACH ROW EXECUTE FUNCTION alert_events_evidence();

-- The record of every decision on alerts for a public view: no name unless show_names (the operator's setting),
-- and no free text written by a person unless show_names (an officer's note may name people); the rule engine's
-- and the validation's generated notes are kept.
CREATE FUNCTION alert_record(show_names boolean DEFAULT false)
RETURNS TABLE (alert_id bigint, event_id bigint, "time" timestamptz, kind text, level text, from_level text,
               severity text, value double precision, unit text, threshold double precision, source text,
               sensor_id text, variable text, period text, period_start timestamptz, period_end timestamptz,
               coverage double precision, indicative boolean, actor text, actor_role text, via text,
               decision_id bigint, note text)
LANGUAGE sql STABLE AS $$
    SELECT e.alert_id, e.id, e.time, e.kind, e.level, e.from_level, e.severity, e.value, e.unit, e.threshold,
           e.source, e.sensor_id, e.variable, e.period, e.period_start, e.period_end, e.coverage, a.indicative,
           CASE WHEN show_names THEN e.actor ELSE e.actor_role END, e.actor_role,
           e.via, e.decision_id,
           CASE WHEN show_names OR e.actor IS NULL OR e.kind = 'evidence_invalidated' THEN e.note END
    FROM alert_events e JOIN alerts a ON a.id = e.alert_id
$$;
COMMENT ON FUNCTION alert_record(boolean) IS
    'Every transition of every alert (raised, escalated, unacknowledged, acknowledged, resolved, note, '
    'evidence_invalidated) with its evidence, level, threshold and legal source, and who acted: the role '
    '(system, technician, officer), or the name when show_names. Filter on alert_id.';

GRANT SELECT ON validation_decisions, validation_in_force, measurement_verification TO aqnet_readonly;
GRANT EXECUTE ON FUNCTION alert_record(boolean) TO aqnet_readonly;
