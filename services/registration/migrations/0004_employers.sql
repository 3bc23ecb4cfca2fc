-- Employers (issue 11): private companies, and for non-ASN government staff the agencies
-- (OPD), state and regional enterprises (BUMN, BUMD) and village governments. Not personal data.
CREATE TABLE employers (
    id               uuid        PRIMARY KEY,
    name             text        NOT NULL,
    kind             text        NOT NULL,  -- private | opd | bumn | bumd | village_gov
    region_code      text        NOT NULL,  -- any Kemendagri level below national
    npp              text        UNIQUE,    -- BPJS Ketenagakerjaan's employer number, if any
    -- [{"year", "count", "source"}], one per year, by year.
    declared_workers jsonb       NOT NULL DEFAULT '[]',
    version          integer     NOT NULL DEFAULT 1,  -- the event sequence
    registered_by    text        NOT NULL,            -- the partner that registered it
    registered_at    timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- GET /v1/employers?region=12.75 matches the code and every code under it: a prefix scan.
CREATE INDEX employers_by_region ON employers (region_code text_pattern_ops, id);

-- How each worker came: the channel, the PERISAI agent (agent channel) and the office's village
-- (village_office channel). Fixed at registration; earlier workers came through partner APIs.
ALTER TABLE participants
    ADD COLUMN channel        text NOT NULL DEFAULT 'partner_api',
    ADD COLUMN agent_id       text,
    ADD COLUMN office_village text;
