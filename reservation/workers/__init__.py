"""Background workers: batch, write idempotently, then acknowledge; safe to replay."""
