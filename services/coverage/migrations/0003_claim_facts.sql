-- Each claim's newest facts (services/coverage/counting.py ClaimFacts: village, programme,
-- status, benefit, the claim's sequence) and the source partition its events travel in (its
-- worker's). Its counters are village_counters named claims.<PROGRAM>.<status> and
-- claims.<PROGRAM>.benefit_paid, moved in the same counting transaction.
CREATE TABLE claim_facts (
    claim_id  uuid     PRIMARY KEY,
    partition smallint NOT NULL,
    facts     jsonb    NOT NULL
);
