-- 0022_late_mark_epochs: late-data marks that concurrent writers never wait on (issue 19). Until now every
-- measurement writer re-marked a slot with an upsert (ON CONFLICT DO UPDATE SET mark = ...), which locks the
-- slot's row until the writer commits: while a backlog of late data drained, every writer (two processes, two
-- batches in flight each) queued behind the others on the same slots, and writes took ~190 ms instead of ~10.
--
-- Now a mark belongs to an epoch: the averaging job's claim (storage/windows_store.py) advances
-- job_watermarks.mark_epoch under the exclusive advisory lock, and a run consumes only the marks of earlier
-- epochs, every writer of which has committed (a writer reads the epoch under the shared lock). A measurement
-- writer inserts its marks with the current epoch and ON CONFLICT DO NOTHING: a mark of the current epoch is never
-- consumed while it is current, so one is enough, and a committed one is never locked. storage/reprocess.py and
-- storage/validation.py (which do not take the lock) still re-mark with a new number. Never edit after release:
-- add a later one instead.

ALTER TABLE job_watermarks ADD COLUMN mark_epoch bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN job_watermarks.mark_epoch IS
    'Advanced by every claim (under the exclusive advisory lock): the epoch of the late-data marks written since; '
    'a run consumes the marks of the epochs before it.';

ALTER TABLE dirty_slots ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE dirty_slots DROP CONSTRAINT dirty_slots_pkey;
ALTER TABLE dirty_slots ADD PRIMARY KEY (sensor_id, variable, slot_start, epoch);
COMMENT ON COLUMN dirty_slots.epoch IS
    'job_watermarks.mark_epoch when the mark was written; one mark per slot and epoch.';
