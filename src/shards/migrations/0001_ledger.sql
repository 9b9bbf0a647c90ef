-- The ledger schema of one shard. Every shard holds the same tables; an account, its
-- entries and the transfers it debits live on the shard its slot maps to.

create table shard_meta (
    key   text primary key,
    value jsonb not null
);

create table accounts (
    id               text primary key,
    tenant_id        text not null,
    slot             integer not null check (slot >= 0),
    currency         char(3) not null,
    normal_balance   text not null check (normal_balance in ('credit', 'debit')),
    allow_overdraft  boolean not null,
    status           text not null default 'active'
                     check (status in ('active', 'frozen', 'closed')),
    is_system        boolean not null default false,
    debits_posted    bigint not null default 0 check (debits_posted >= 0),
    credits_posted   bigint not null default 0 check (credits_posted >= 0),
    debits_pending   bigint not null default 0 check (debits_pending >= 0),
    credits_pending  bigint not null default 0 check (credits_pending >= 0),
    version          bigint not null default 0 check (version >= 0),
    metadata         jsonb not null default '{}'::jsonb,
    created_at       timestamptz not null default now()
);
create index accounts_tenant_id on accounts (tenant_id, id desc);

create table transfers (
    id                 text primary key,
    tenant_id          text not null,
    debit_account_id   text not null,
    credit_account_id  text not null,
    amount             bigint not null check (amount > 0),
    currency           char(3) not null,
    status             text not null
                       check (status in ('processing', 'pending', 'posted', 'voided', 'failed')),
    cross_shard        boolean not null,
    source_shard       integer not null,
    destination_shard  integer not null,
    saga_step          text,
    workflow_id        text,
    failure_code       text,
    metadata           jsonb not null default '{}'::jsonb,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);
create index transfers_tenant_id on transfers (tenant_id, id desc);
create index transfers_unfinished on transfers (created_at) where status = 'processing';

-- Immutable journal: never updated, never deleted. One row per bucket delta; the
-- account's balance and version after it make history and point-in-time balances cheap.
create table entries (
    account_id       text not null,
    version          bigint not null check (version > 0),
    transfer_id      text not null,
    currency         char(3) not null,
    layer            text not null check (layer in ('posted', 'pending')),
    side             text not null check (side in ('debit', 'credit')),
    amount           bigint not null check (amount <> 0),
    posted_after     bigint not null,
    available_after  bigint not null,
    created_at       timestamptz not null default now(),
    primary key (account_id, version)
);
create index entries_transfer_id on entries (transfer_id);

create or replace function entries_are_immutable() returns trigger language plpgsql as $$
begin
    raise exception 'entries are immutable';
end $$;
create trigger entries_no_update before update or delete on entries
    for each statement execute function entries_are_immutable();

-- Operation log: every state change carries its key, written in the same transaction.
-- A repeat finds the key and returns the first result instead of moving money again.
create table operations (
    key          text primary key,
    transfer_id  text not null,
    result       jsonb,
    created_at   timestamptz not null default now()
);

-- Saga hand-over: a row is written with the reserve, in the same transaction, and
-- finished with the post or the release. An unclaimed or stale row is swept.
create table saga_outbox (
    transfer_id        text primary key,
    tenant_id          text not null,
    debit_account_id   text not null,
    credit_account_id  text not null,
    amount             bigint not null check (amount > 0),
    currency           char(3) not null,
    source_shard       integer not null,
    destination_shard  integer not null,
    workflow_id        text,
    claimed_at         timestamptz,
    finished_at        timestamptz,
    created_at         timestamptz not null default now()
);
create index saga_outbox_open on saga_outbox (created_at) where finished_at is null;

create table idempotency_keys (
    api_key_id       text not null,
    key              text not null,
    request_hash     text not null,
    state            text not null check (state in ('in_flight', 'done')),
    response_status  integer,
    response_body    bytea,
    locked_at        timestamptz not null default now(),
    created_at       timestamptz not null default now(),
    primary key (api_key_id, key)
);
create index idempotency_keys_created_at on idempotency_keys (created_at);

create table api_keys (
    id          text primary key,
    tenant_id   text not null,
    key_hash    text not null unique,
    created_at  timestamptz not null default now(),
    revoked_at  timestamptz
);
