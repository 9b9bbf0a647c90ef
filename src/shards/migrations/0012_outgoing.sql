-- What an account with a daily limit sent or newly held, when it did: one row per movement
-- that starts money leaving it (a transfer, a hold, an increment, a reserve, a delayed
-- credit's debit: `amount` > 0) and per release of held money (a void, an expiry, what a
-- final capture leaves, a failed saga's release: `amount` < 0). The rolling 24 hours sum
-- each transfer's rows within the window, never below zero per transfer, so a hold counts
-- when it is placed or raised and a release gives back only what the window counted. Read
-- and written under the account's lock; rows older than a day are deleted by the API's
-- upkeep.
create table outgoing (
    account_id text not null,
    transfer_id text not null,
    amount bigint not null check (amount <> 0),
    created_at timestamptz not null
);
create index outgoing_by_account on outgoing (account_id, created_at);
create index outgoing_by_time on outgoing (created_at);

-- The window so far, as the transfers of limited accounts showed it.
insert into outgoing (account_id, transfer_id, amount, created_at)
select t.debit_account_id, t.id,
       case when t.expires_at is not null and t.status not in ('pending', 'processing')
            then t.captured_amount else t.amount end,
       t.created_at
from transfers t join accounts a on a.id = t.debit_account_id
where a.daily_outgoing is not null and t.status <> 'failed'
  and t.created_at > now() - interval '1 day'
  and (t.expires_at is null or t.status in ('pending', 'processing') or t.captured_amount > 0);

drop index transfers_debit_recent;
