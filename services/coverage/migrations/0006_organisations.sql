-- Employers (OPDs included) and funded programmes as their sources last published them (topic
-- ucj.organisations), folded by the coverage workers in the same transactions as the counters:
-- the dimension counters of issue 11 are read against them (declared workers, quota, budget).
-- `version` is the partition's version of the last change, as for village_counters, so the
-- API's follower reads only what changed.
CREATE TABLE organisations (
    id        uuid     PRIMARY KEY,
    kind      text     NOT NULL CHECK (kind IN ('employer', 'programme')),
    partition smallint NOT NULL,
    sequence  bigint   NOT NULL,
    data      jsonb    NOT NULL,
    version   bigint   NOT NULL
);
CREATE INDEX organisations_by_version ON organisations (partition, version);
