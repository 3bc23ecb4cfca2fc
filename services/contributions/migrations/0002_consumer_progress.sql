-- How far the contributions worker has read the participant events: the events still waiting
-- behind its position (-1: not known yet), as of updated_at. An id the service does not know is
-- "not yet known" (404, retry) while events wait or the report is old, else plainly unknown.
CREATE TABLE IF NOT EXISTS consumer_progress (
    consumer   text        PRIMARY KEY,
    waiting    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
