-- Holds, delayed credits and review between accounts on two shards.
--
-- What the saga makes of a reserved transfer (`ledger.transfers.SettlementKind`): a
-- transfer (credit, then post), a hold (credit pending on the destination, keep the
-- reserve) or a delayed credit (credit pending until `available_on`, post the reserve).
alter table saga_outbox add column kind text not null default 'transfer'
    check (kind in ('transfer', 'hold', 'deferred'));

-- Movements a change on this (source) shard owes another shard: what a capture, a void or
-- an expiry of a hold across shards, or a delayed credit falling due, does on the
-- destination. Written in the transaction of the change, applied on the destination under
-- `operation_key` (exactly once however often it is applied), then marked `applied_at`.
create table remote_postings (
    operation_key      text primary key,
    transfer_id        text not null,
    tenant_id          text not null,
    movement           text not null,
    debit_account_id   text not null,
    credit_account_id  text not null,
    amount             bigint not null check (amount > 0),
    currency           char(3) not null,
    source_shard       integer not null,
    destination_shard  integer not null,
    created_at         timestamptz not null default clock_timestamp(),
    applied_at         timestamptz,
    -- Set when the destination refused the follow-up (never expected: the source checked
    -- what it could): it stays open, visible to `verify`, and goes to the back of the line
    -- so it cannot hold up the others.
    refused_at         timestamptz,
    refusal            text
);
create index remote_postings_open on remote_postings ((coalesce(refused_at, created_at)))
    where applied_at is null;
create index remote_postings_transfer on remote_postings (transfer_id);
