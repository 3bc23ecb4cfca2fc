-- A membership a claim ended (an approved JKM: death; JHT for stopping work: jht_withdrawn),
-- learnt from the claims service's membership events: no more dues, no payment accepted.
ALTER TABLE members
    ADD COLUMN ended_reason text,
    ADD COLUMN ended_on     date;
