-- Memberships that ended elsewhere (a lapse decided by contributions, a death or a JHT
-- withdrawal decided by claims), learnt from membership events: the participant is then
-- terminated here too, so the same NIK may register again (a new membership; this one kept).
ALTER TABLE participants
    ADD COLUMN ended_reason text,
    ADD COLUMN ended_at     timestamptz;
