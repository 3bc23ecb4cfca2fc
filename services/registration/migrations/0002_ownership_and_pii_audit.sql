-- Ownership: a partner reads and changes the workers it registered (participants.registered_by)
-- and those an admin granted it here.
CREATE TABLE participant_grants (
    participant_id uuid        NOT NULL REFERENCES participants (id),
    key_id         text        NOT NULL,
    granted_by     text        NOT NULL,
    granted_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (participant_id, key_id)
);

-- Every read of a full record (NIK and name unmasked, scope participants:pii): who, when, which
-- worker, and the reason the caller gave (X-Access-Reason).
CREATE TABLE pii_reads (
    id             bigserial   PRIMARY KEY,
    key_id         text        NOT NULL,
    participant_id uuid        NOT NULL,
    reason         text        NOT NULL,
    read_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pii_reads_by_participant ON pii_reads (participant_id, read_at);

-- Lookups by NIK (POST /v1/participants/lookup) find the live membership through the unique
-- index participants_live_nik.
