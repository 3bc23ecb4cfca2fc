-- Funded programmes (issue 11): a local government or a company pays the dues of a quota of
-- informal workers of its region for some months, from a budget. Enrolling locks the
-- programme's row, so the quota holds under concurrent enrolments; so does paying under it,
-- so the budget does too.
CREATE TABLE programmes (
    id             uuid PRIMARY KEY,
    name           text        NOT NULL,
    funder_region  text        NOT NULL,   -- province, regency, district or village code
    year           integer     NOT NULL,
    quota          integer     NOT NULL,
    budget_rupiah  bigint      NOT NULL,
    funding_code   text        NOT NULL,   -- SG SD SA SL (government) or SC SB (csr)
    programs       text[]      NOT NULL,
    first_period   text        NOT NULL,   -- YYYY-MM
    last_period    text        NOT NULL,   -- YYYY-MM
    seq            integer     NOT NULL DEFAULT 1,  -- sequence of its last programme event
    created_by     text        NOT NULL,   -- API key id
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX programmes_by_funder ON programmes (funder_region, year);

-- Workers enrolled in a programme for the months first..last; a withdrawn enrolment is kept
-- (withdrawn_on set) and comes back if the worker is enrolled again.
CREATE TABLE programme_enrolments (
    programme_id    uuid        NOT NULL REFERENCES programmes (id),
    participant_id  uuid        NOT NULL REFERENCES members (participant_id),
    first_period    text        NOT NULL,
    last_period     text        NOT NULL,
    enrolled_on     date        NOT NULL,
    enrolled_by     text        NOT NULL,   -- API key id
    withdrawn_on    date,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (programme_id, participant_id)
);
CREATE INDEX programme_enrolments_by_participant ON programme_enrolments (participant_id)
    WHERE withdrawn_on IS NULL;

-- A payment may name the programme that paid it, and the PERISAI agent who collected it; the
-- day it was booked (WIB) is the contribution.paid event's paid_on (ucj reconcile reads both).
ALTER TABLE contributions
    ADD COLUMN programme_id uuid REFERENCES programmes (id),
    ADD COLUMN agent_id     text,
    ADD COLUMN paid_on      date;
UPDATE contributions SET paid_on = (created_at AT TIME ZONE 'Asia/Jakarta')::date;
ALTER TABLE contributions ALTER COLUMN paid_on SET NOT NULL;
CREATE INDEX contributions_by_programme ON contributions (programme_id)
    WHERE programme_id IS NOT NULL;
