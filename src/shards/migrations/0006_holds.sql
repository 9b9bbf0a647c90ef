-- Holds: a `pending` transfer holds `amount` (raised by increments) on its debit account
-- and shows it pending on its credit account until a final capture (`posted`), a void
-- (`voided`) or `expires_at` (`expired`). `captured_amount` is what captures posted so far
-- and `captures` lists them in order; what is still held is `amount - captured_amount`
-- while the transfer is pending, and nothing after.
alter table transfers drop constraint transfers_status_check;
alter table transfers add constraint transfers_status_check
    check (status in ('processing', 'pending', 'posted', 'voided', 'expired', 'failed'));
alter table transfers add column expires_at timestamptz;
alter table transfers add column captured_amount bigint not null default 0
    check (captured_amount >= 0);
alter table transfers add column captures jsonb not null default '[]'::jsonb;
alter table transfers add constraint transfers_capture_within_hold
    check (captured_amount <= amount);

-- The holds due next: read by each shard's expiry workflow.
create index transfers_hold_expiry on transfers (expires_at) where status = 'pending';
