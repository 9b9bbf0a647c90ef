-- Per-account limits (null: none). `min_available` is the lowest available balance a
-- movement may leave (an overdraft line when negative); `max_balance` the highest posted
-- plus pending balance; `daily_outgoing` the most the account may send over any 24 hours.
alter table accounts add column min_available bigint;
alter table accounts add column max_balance bigint check (max_balance >= 0);
alter table accounts add column daily_outgoing bigint check (daily_outgoing > 0);

-- What an account sent over the last 24 hours is summed from its transfers, under its
-- lock, when it has a daily limit.
create index transfers_debit_recent on transfers (debit_account_id, created_at);
