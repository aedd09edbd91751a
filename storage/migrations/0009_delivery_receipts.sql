-- 0009_delivery_receipts: exactly once for readings stamped with aqnet's receive time. One receipt per message
-- identity (sensors/delivery.py: MQTT session + packet id + payload digest, or HTTP sensor + body digest) with the
-- time its readings were stored at; a redelivered message takes that time and is then a duplicate, not a new row.
-- Written in the measurement writer's transaction (storage/deliveries.py); expired by housekeeping
-- (storage/retention.py). Never edit after release: add 0010_... instead.

CREATE TABLE delivery_receipts (
    key         text PRIMARY KEY,
    time        timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_receipts_recorded_idx ON delivery_receipts (recorded_at);

COMMENT ON TABLE delivery_receipts IS
    'Receive-time messages already stored: identity → the time their readings carry (storage/deliveries.py).';
COMMENT ON COLUMN delivery_receipts.key IS
    'mqtt:<client id>:<packet id>:<digest> or http:<sensor>:<digest> (sensors/delivery.py).';
COMMENT ON COLUMN delivery_receipts.time IS 'The receive time the first stored delivery was stamped with.';
COMMENT ON COLUMN delivery_receipts.recorded_at IS 'When the receipt was last written (retention).';
