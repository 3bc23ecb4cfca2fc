-- The day of registration as the service's clock said it (WIB), the one its event carried:
-- coverage counts new registrations per month of registration, and reconcile reads it here.
-- Before this column it was derived from registered_at (the database's clock), which a moved
-- clock (tests) makes differ from the event.
ALTER TABLE participants ADD COLUMN registered_on date;
UPDATE participants SET registered_on = (registered_at AT TIME ZONE 'Asia/Jakarta')::date;
ALTER TABLE participants
    ALTER COLUMN registered_on SET DEFAULT ((now() AT TIME ZONE 'Asia/Jakarta')::date),
    ALTER COLUMN registered_on SET NOT NULL;
