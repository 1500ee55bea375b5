"""Safe retries of creates: the `Idempotency-Key` header, as payment APIs have it."""
