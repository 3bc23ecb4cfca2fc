-- What the claims service knows of each participant, learnt from events (never by calling
-- another service): where and how they are covered, their birth month, who registered them.
CREATE TABLE members (
    participant_id   uuid PRIMARY KEY,
    segment          text        NOT NULL,
    programs         text[]      NOT NULL,
    registered_on    date        NOT NULL,
    monthly_income   bigint      NOT NULL,
    born_in          text,                    -- YYYY-MM
    region_code      text        NOT NULL,
    owner            text,                    -- the partner that registered the worker
    registration_seq integer     NOT NULL,
    ended_on         date,                    -- the membership ended (any reason) on this day
    ended_reason     text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Every payment contributions published (contribution.paid), once each by its sequence.
CREATE TABLE member_payments (
    participant_id uuid    NOT NULL,
    sequence       integer NOT NULL,
    first_period   text    NOT NULL,
    last_period    text    NOT NULL,
    paid_on        date    NOT NULL,
    jht_amount     bigint  NOT NULL,
    jp_amount      bigint  NOT NULL,
    PRIMARY KEY (participant_id, sequence)
);

-- Claims as filed, judged and decided. claim_ref is unique: the same ref again returns the
-- first result; with another request, 409.
CREATE TABLE claims (
    id              uuid PRIMARY KEY,
    claim_ref       text        NOT NULL UNIQUE,
    request_hash    bytea       NOT NULL,
    participant_id  uuid        NOT NULL,
    program         text        NOT NULL,
    incident_date   date        NOT NULL,
    cause           text,
    filed_on        date        NOT NULL,
    filed_by        text        NOT NULL,     -- partner id
    status          text        NOT NULL,     -- submitted | approved | rejected
    rule            text        NOT NULL,     -- the rule that judged it
    reason          text,                     -- why rejected
    benefit         jsonb,
    terminates      text,                     -- the membership end an approval causes
    decided_by      text,
    decided_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX claims_by_participant ON claims (participant_id, created_at, id);
CREATE INDEX claims_by_time ON claims (created_at, id);
