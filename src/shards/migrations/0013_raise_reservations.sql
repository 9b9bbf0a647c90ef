-- Increments of holds across shards, on the destination shard: the raise is reserved
-- (`RAISE_CREDIT`, more pending credit, checked under the payee's lock) before the source
-- holds more, and recorded here in the same transaction under the increment's operation
-- key on the source. Settled once the source decided: kept when it held the increment,
-- voided (`VOID_CREDIT`) when it refused it. A reservation left open by a crash is settled
-- by the funds timers: they decide the source's key (claiming it refused when the source
-- never took it, so a late request cannot take it after), then settle the same way.
create table raise_reservations (
    operation_key      text primary key,
    transfer_id        text not null,
    tenant_id          text not null,
    debit_account_id   text not null,
    credit_account_id  text not null,
    amount             bigint not null check (amount > 0),
    currency           char(3) not null,
    source_shard       integer not null,
    destination_shard  integer not null,
    created_at         timestamptz not null default clock_timestamp(),
    settled_at         timestamptz,
    kept               boolean,
    check ((settled_at is null) = (kept is null))
);
create index raise_reservations_open on raise_reservations (created_at)
    where settled_at is null;
