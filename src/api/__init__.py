"""The HTTP front: FastAPI routes, auth, idempotency keys, error mapping, metrics."""
