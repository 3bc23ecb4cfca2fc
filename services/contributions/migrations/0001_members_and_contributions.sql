-- What the contributions service knows of each participant, learnt from registration events
-- (never by calling the registration service), and where their membership stands.
CREATE TABLE members (
    participant_id    uuid PRIMARY KEY,
    segment           text        NOT NULL,
    monthly_income    bigint      NOT NULL,
    programs          text[]      NOT NULL,
    region_code       text        NOT NULL,
    employer_id       text,
    registered_on     date        NOT NULL,
    registration_seq  integer     NOT NULL,   -- newest registration event applied
    deregistered      boolean     NOT NULL DEFAULT false,
    paid_through      text,                   -- YYYY-MM, payments are contiguous
    status            text        NOT NULL DEFAULT 'inactive',  -- as last published
    status_reason     text,
    status_seq        integer     NOT NULL DEFAULT 0,           -- membership event sequence
    next_check_on     date,                   -- when time alone may change the status
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX members_due_for_check ON members (next_check_on) WHERE next_check_on IS NOT NULL;

-- Money received. payment_ref is unique: the same ref again returns the first result.
CREATE TABLE contributions (
    id                 uuid PRIMARY KEY,
    payment_ref        text        NOT NULL UNIQUE,
    request_hash       bytea       NOT NULL,
    participant_id     uuid        NOT NULL REFERENCES members (participant_id),
    first_period       text        NOT NULL,
    months             integer     NOT NULL,
    amount             bigint      NOT NULL,
    payer              text        NOT NULL,
    funding_code       text,
    paid_through       text        NOT NULL,
    membership_status  text        NOT NULL,
    received_by        text        NOT NULL,   -- API key id
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contributions_by_participant ON contributions (participant_id);
