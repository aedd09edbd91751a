-- 0021_node_leases: several aqnet nodes on one broker and one database (docs/operators/nodes.md). The members
-- (each node's heartbeat), the leases of intake partitions and Modbus link groups (storage/nodes/store.py), and the
-- fence of the write path: a node that is no longer a partition's holder cannot store a receipt of a message of
-- that partition's session (storage/nodes/fence.py). Never edit after release: add a later one instead.

CREATE TABLE node_members (
    node_id     text PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
COMMENT ON TABLE node_members IS 'aqnet nodes and their heartbeats; a node is live until expires_at.';

CREATE TABLE node_leases (
    kind        text NOT NULL CHECK (kind IN ('partition', 'station')),
    key         text NOT NULL,
    owner       text,
    epoch       bigint NOT NULL DEFAULT 1,
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (kind, key)
);
COMMENT ON TABLE node_leases IS
    'Who works on what: an intake partition (key: its MQTT session''s client id) or a Modbus link group (key: '
    'the group''s link), held by owner until expires_at (the database''s clock).';
COMMENT ON COLUMN node_leases.owner IS 'The holding node; NULL once released.';
COMMENT ON COLUMN node_leases.epoch IS 'Fencing token: incremented at every take, by any node.';

-- The write path's fence. A writer connection of a node carries its id (`-c aqnet.node_id=...`); every receipt of
-- an MQTT message it stores names the message's session (sensors/delivery.py). If a session is a leased partition,
-- the writing node must hold that lease now, unexpired; the lease rows are locked FOR SHARE until the batch
-- commits, so a take (an UPDATE of the row) waits for a stale holder's batch in flight and sees its receipts.
-- Without aqnet.node_id (one node, the CLI) nothing is checked.
CREATE FUNCTION aqnet_fence_receipts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    me text := nullif(current_setting('aqnet.node_id', true), '');
    lease record;
BEGIN
    IF me IS NULL THEN
        RETURN NULL;
    END IF;
    FOR lease IN
        SELECT l.key, l.owner, l.epoch, l.expires_at FROM node_leases l
        WHERE l.kind = 'partition' AND l.key IN (
            SELECT DISTINCT substring(r.key FROM '^mqtt:(.*):[0-9]+:[0-9a-f]+$') FROM fenced_rows r
            WHERE r.key LIKE 'mqtt:%')
        ORDER BY l.key
        FOR SHARE
    LOOP
        IF lease.owner IS DISTINCT FROM me OR lease.expires_at <= clock_timestamp() THEN
            RAISE EXCEPTION 'node % does not hold partition % (holder %, epoch %): its late write is refused',
                me, lease.key, coalesce(lease.owner, 'none'), lease.epoch
                USING ERRCODE = 'AQF01', DETAIL = lease.key;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER delivery_receipts_fence_insert AFTER INSERT ON delivery_receipts
    REFERENCING NEW TABLE AS fenced_rows FOR EACH STATEMENT EXECUTE FUNCTION aqnet_fence_receipts();
CREATE TRIGGER delivery_receipts_fence_update AFTER UPDATE ON delivery_receipts
    REFERENCING NEW TABLE AS fenced_rows FOR EACH STATEMENT EXECUTE FUNCTION aqnet_fence_receipts();
