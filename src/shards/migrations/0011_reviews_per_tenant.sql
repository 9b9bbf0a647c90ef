-- The reviews a tenant has waiting, counted when another transfer is bound for review
-- (`LEDGERFLOW_REVIEWS_WAITING_MAX`): an index range per tenant, bounded by the cap.
create index transfers_in_review_by_tenant on transfers (tenant_id) where status = 'requires_review';
