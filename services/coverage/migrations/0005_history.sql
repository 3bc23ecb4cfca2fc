-- A region's counters as they were at `taken_at` (services/coverage/snapshots.py): written each
-- hour and at each WIB day's end, only for the regions whose counters or workforce changed since
-- their last snapshot. `taken_at` is the scheduled moment, not the clock of the process, so the
-- API processes that snapshot at once write the same key, and the second changes nothing.
-- `counters` holds every counter (segments, claims) for answers "as of" a past day.
CREATE TABLE coverage_snapshots (
    region_code text        NOT NULL,
    taken_at    timestamptz NOT NULL,
    registered  bigint      NOT NULL,
    active      bigint      NOT NULL,
    inactive    bigint      NOT NULL,
    terminated  bigint      NOT NULL,
    workforce   bigint,
    counters    jsonb       NOT NULL,
    PRIMARY KEY (region_code, taken_at)
);

-- One row per snapshot run: when history starts (a region without a snapshot before a day
-- after that had no counters yet), and how many regions each run wrote.
CREATE TABLE snapshot_runs (
    taken_at timestamptz PRIMARY KEY,
    regions  int         NOT NULL
);
