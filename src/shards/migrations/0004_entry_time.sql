-- Balances at any moment read an account's entries by time, so an account's entry times
-- must never go backwards. `created_at` used to default to now(), the transaction's start:
-- a transaction that took an account's lock later than another could still carry an
-- earlier time. Postings now stamp their entries under the account locks, never earlier
-- than the account's previous entry (`accounts.entry_at`), and record the account's
-- incoming pending balance after each entry (`pending_after`; the held balance is
-- `posted_after - available_after`). Entries written before this migration keep their
-- old times and have no `pending_after`.
alter table accounts add column entry_at timestamptz;
alter table entries add column pending_after numeric(38, 0);

-- The last version of `account` stamped at or before `at` (0 when none): a binary search
-- over the primary key, since times rise with versions. O(log n) index probes, no index
-- on time for every posting to maintain.
create or replace function entry_version_at(account text, at timestamptz)
returns bigint language plpgsql stable as $$
declare
    low bigint := 0;
    high bigint;
    middle bigint;
    stamped timestamptz;
begin
    select max(version) into high from entries where account_id = account;
    if high is null then
        return 0;
    end if;
    -- Invariant: version `low` is at or before `at` (0 stands for "before every entry"),
    -- every version above `high` is after it.
    while low < high loop
        middle := (low + high + 1) / 2;
        select created_at into stamped from entries
        where account_id = account and version = middle;
        if stamped <= at then
            low := middle;
        else
            high := middle - 1;
        end if;
    end loop;
    return low;
end $$;
