-- API keys are one set for every service (shared/key_directory.py): this table is the
-- service's copy of the compacted topic ucj.api-keys. A rotation makes a new key for the same
-- partner (partner_id: the id of the partner's first key), so what a partner owns survives it.
-- revoked_at may lie in the future: the old key of a rotation works until then.
ALTER TABLE api_keys
    ADD COLUMN partner_id          uuid,
    ADD COLUMN requests_per_minute integer NOT NULL DEFAULT 600,
    ADD COLUMN rotated_from        uuid;
UPDATE api_keys SET partner_id = id WHERE partner_id IS NULL;
ALTER TABLE api_keys ALTER COLUMN partner_id SET NOT NULL;
