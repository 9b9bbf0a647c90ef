-- Review: a transfer debiting more than its account's `review_above` waits, its funds held
-- like a hold's, in `requires_review` until a person approves (it posts) or rejects it (it
-- fails with `review_rejected`), or its review times out (rejected). Each review is one
-- Temporal workflow; `workflow_id` records it once started.
alter table accounts add column review_above bigint check (review_above > 0);
alter table transfers drop constraint transfers_status_check;
alter table transfers add constraint transfers_status_check
    check (status in ('processing', 'pending', 'requires_review', 'posted', 'voided',
                      'expired', 'failed'));
create index transfers_in_review on transfers (created_at) where status = 'requires_review';
