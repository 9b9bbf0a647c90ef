-- The outbox sweep reads unclaimed and claimed rows separately, so rows of sagas that are
-- still running (a post retrying while a shard is down) cannot fill its window and hide
-- the rows behind them. `swept_at` records when the sweep last checked a row's workflow;
-- claimed rows are checked oldest `coalesce(swept_at, created_at)` first, so the
-- ones just checked go to the back and every claimed row gets its turn.
alter table saga_outbox add column swept_at timestamptz;

create index saga_outbox_unclaimed on saga_outbox (created_at)
    where finished_at is null and workflow_id is null;
create index saga_outbox_claimed on saga_outbox ((coalesce(swept_at, created_at)))
    where finished_at is null and workflow_id is not null;
-- The rows of one workflow: read when its status is checked, marked when it is running.
create index saga_outbox_workflow on saga_outbox (workflow_id) where finished_at is null;
