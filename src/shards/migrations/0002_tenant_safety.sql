-- Account totals only ever grow: every movement adds to a debit or a credit total. A
-- clearing account is in every cross-shard transfer of its shard and currency, for every
-- tenant, so in bigint its totals were a shared budget one tenant could spend (about 9.2e18
-- minor units moved across shards), after which no saga could post on that shard again.
-- Totals (and the balances entries record after them) are numeric: no volume of movements
-- fills them. Each amount stays a bigint, and a customer account's balance stays within the
-- bigint range (`ledger.posting` checks it), so the API's numbers are unchanged.
alter table accounts
    alter column debits_posted type numeric(38, 0),
    alter column credits_posted type numeric(38, 0),
    alter column debits_pending type numeric(38, 0),
    alter column credits_pending type numeric(38, 0);

alter table entries
    alter column posted_after type numeric(38, 0),
    alter column available_after type numeric(38, 0);

-- The operation key a request's money movement is made under, fixed when its Idempotency-Key
-- is first claimed (and again when an expired key is claimed anew): it carries the request's
-- fingerprint, so a key reused with other parameters after its record expired moves money
-- under a new operation key instead of replaying the old transfer. Null on records made
-- before this column, whose requests keep the operation key they were made under.
alter table idempotency_keys add column operation_key text;
