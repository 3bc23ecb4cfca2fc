-- The coverage worker's state, durable and shared by every worker (services/coverage/README.md).
-- A counting transaction folds a batch of source events: it locks the batch's partitions,
-- reads the facts of the batch's participants, writes their new facts, moves the village
-- counters and records the source offsets, all at once. Whoever owns a partition next, after
-- any crash or rebalance, reads exactly what decided "seen before".

-- What each source last said about a participant (services/coverage/counting.py Facts), and the
-- source partition its events travel in (participant id hashed, as the relay sends them).
CREATE TABLE participant_facts (
    participant_id uuid     PRIMARY KEY,
    partition      smallint NOT NULL,
    facts          jsonb    NOT NULL
);

-- One row per source partition number. A counting transaction locks its partitions' rows
-- (in order, FOR UPDATE), so writers of one partition take turns whichever topic or worker they
-- come from; `version` numbers its committed transactions, so readers can follow the changes.
CREATE TABLE counting_partitions (
    partition  smallint    PRIMARY KEY,
    version    bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The tracking record: per source topic partition, the next offset to fold.
CREATE TABLE source_offsets (
    topic       text     NOT NULL,
    partition   smallint NOT NULL,
    next_offset bigint   NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Absolute counters of each village, per source partition (only that partition's transactions
-- write them: no two workers ever wait on the same row). `version` is the partition's version
-- of the last change. A counter that falls to zero keeps its row (value 0), so a reader that
-- follows versions sees it fall.
CREATE TABLE village_counters (
    partition smallint NOT NULL,
    village   text     NOT NULL,
    name      text     NOT NULL,
    value     bigint   NOT NULL,
    version   bigint   NOT NULL,
    PRIMARY KEY (partition, village, name)
);
CREATE INDEX village_counters_by_version ON village_counters (partition, version);
