-- How far a service's worker has read its input events (shared/consumer_progress.py): the events
-- still waiting behind its position (-1: not known yet), as of updated_at. Contributions made it
-- in its own migration before; the same table for every service that needs it.
CREATE TABLE IF NOT EXISTS consumer_progress (
    consumer   text        PRIMARY KEY,
    waiting    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
