-- The event feed: one row per change of a transfer's state, written by the statement that
-- makes the change, so an event is never lost and never written twice (a repeated
-- operation writes nothing). `data` is the transfer row as the change left it.
--
-- Ids sort as the changes happened: 'evt_', the time of the change in microseconds (the
-- posting's stamp, taken under the account locks), the shard and a per-shard sequence,
-- all fixed-width hex. A tenant's feed merges its shards by id.
create sequence events_seq;

create table events (
    id           text primary key,
    tenant_id    text not null,
    type         text not null,
    transfer_id  text not null,
    data         jsonb not null,
    created_at   timestamptz not null
);
create index events_tenant on events (tenant_id, id desc);
create index events_tenant_type on events (tenant_id, type, id desc);

-- An event's id from the change's time and the shard (see above).
create function event_id(at timestamptz, shard integer) returns text
language sql volatile as $$
    select 'evt_' || lpad(to_hex((extract(epoch from at) * 1000000)::bigint), 14, '0')
           || lpad(to_hex(shard), 4, '0') || lpad(to_hex(nextval('events_seq')), 12, '0')
$$;
