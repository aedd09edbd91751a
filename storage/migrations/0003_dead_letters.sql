-- 0003_dead_letters: make dead letters replayable (where the bytes came from, in which payload format, the
-- current error, the outcome of the last replay) and list them fast by sensor and by what is still pending.
-- The bound (at most N rows, oldest deleted first) is enforced by storage.deadletter.prune(conn, max_rows),
-- which the daemon's scheduler calls periodically: see storage/deadletter.py.
-- Never edit after release: add 0004_... instead.

ALTER TABLE dead_letters
    ADD COLUMN topic           text,
    ADD COLUMN endpoint        text,
    ADD COLUMN format          text,
    ADD COLUMN error           text,
    ADD COLUMN replayed_at     timestamptz,
    ADD COLUMN replay_result   text,
    ADD COLUMN replay_attempts integer NOT NULL DEFAULT 0 CHECK (replay_attempts >= 0);

CREATE INDEX dead_letters_sensor_idx ON dead_letters (sensor_id, received_at DESC);
-- `aqnet deadletter replay --all`: the letters not replayed yet, oldest first
CREATE INDEX dead_letters_pending_idx ON dead_letters (received_at, id) WHERE replayed_at IS NULL;

COMMENT ON COLUMN dead_letters.source IS
    'Where it came from: mqtt, http (payload letters, replayable), modbus, writer (conflicts), pipeline, ...';
COMMENT ON COLUMN dead_letters.reason IS 'Short machine-readable code at receipt (a metrics label), e.g. not_json.';
COMMENT ON COLUMN dead_letters.detail IS 'The error at receipt, naming where, what and what was expected.';
COMMENT ON COLUMN dead_letters.payload IS 'The raw bytes as received (MQTT payload or HTTP body).';
COMMENT ON COLUMN dead_letters.topic IS 'MQTT topic, or the HTTP method and path (and identifying header).';
COMMENT ON COLUMN dead_letters.endpoint IS 'Modbus host:port/unit or serial port/unit of a failing device.';
COMMENT ON COLUMN dead_letters.format IS
    'Payload format name (sensors.mqtt.payloads.FORMATS), when known at receipt; else derived from the topic.';
COMMENT ON COLUMN dead_letters.error IS
    'The current error when it differs from detail: set when a replay fails again (NULL: detail is the error).';
COMMENT ON COLUMN dead_letters.replayed_at IS
    'When `aqnet deadletter replay` stored it (NULL: still pending). A replayed letter is never replayed again.';
COMMENT ON COLUMN dead_letters.replay_result IS
    'Outcome of the last replay attempt, e.g. "stored 3 readings" or "failed (unknown_sensor): ...".';
COMMENT ON COLUMN dead_letters.replay_attempts IS 'How many times a replay was attempted.';
