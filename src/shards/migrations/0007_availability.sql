-- Delayed availability: a transfer with `available_on` posted its debit at once (to the
-- shard's availability account) and shows its credit as the payee's pending balance until
-- then; `available_at` records when the credit became available (null while it waits).
alter table transfers add column available_on timestamptz;
alter table transfers add column available_at timestamptz;

-- The credits due next: read by each shard's funds timers.
create index transfers_available_on on transfers (available_on)
    where available_on is not null and available_at is null;
-- What an account still waits for: GET /v1/accounts/{id}/availability.
create index transfers_awaiting_credit on transfers (credit_account_id, available_on)
    where available_on is not null and available_at is null;
