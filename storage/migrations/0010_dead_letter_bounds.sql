-- 0010_dead_letter_bounds: a dead letter keeps at most 64 KiB of its payload (ingest/letter.py MAX_PAYLOAD_BYTES,
-- the decoders' own limit), with the size and SHA-256 of the whole payload as received, so a flood of large refused
-- messages cannot fill the database; storage/deadletter.py `prune` also bounds the table by bytes and age.
-- Never edit after release: add 0011_... instead.

ALTER TABLE dead_letters
    ADD COLUMN payload_size   integer CHECK (payload_size >= 0),
    ADD COLUMN payload_sha256 text CHECK (payload_sha256 ~ '^[0-9a-f]{64}$');

COMMENT ON COLUMN dead_letters.payload_size IS
    'Size in bytes of the payload as received; payload keeps at most its first 65536 bytes.';
COMMENT ON COLUMN dead_letters.payload_sha256 IS 'SHA-256 (hex) of the whole payload as received.';
