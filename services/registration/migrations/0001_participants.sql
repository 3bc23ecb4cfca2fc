-- Participants: the only place NIK and names are kept (personal data, UU 27/2022).
-- Handed out in blocks of 1000 by each process (store.KpjAllocator).
CREATE SEQUENCE kpj_sequence INCREMENT BY 1000;

CREATE TABLE participants (
    id              uuid PRIMARY KEY,
    kpj             text        NOT NULL UNIQUE,
    nik             text        NOT NULL,
    full_name       text        NOT NULL,
    birth_date      date        NOT NULL,
    sex             char(1)     NOT NULL,
    region_code     text        NOT NULL,
    segment         text        NOT NULL,
    employer_id     text,
    occupation      text,
    monthly_income  bigint      NOT NULL,
    programs        text[]      NOT NULL,
    status          text        NOT NULL DEFAULT 'registered',  -- registered | terminated
    version         integer     NOT NULL DEFAULT 1,             -- the event sequence
    registered_by   text        NOT NULL,                       -- API key id of the partner
    registered_at   timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One live membership per NIK; a terminated worker may register anew.
CREATE UNIQUE INDEX participants_live_nik ON participants (nik) WHERE status <> 'terminated';

-- Idempotency-Key: the first response to a (caller, key), with the hash of its request.
CREATE TABLE idempotency_keys (
    caller        text        NOT NULL,
    key           text        NOT NULL,
    request_hash  bytea       NOT NULL,
    status_code   integer,
    body          bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key)
);
