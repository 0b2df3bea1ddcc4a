"""Alembic migrations of the store, run by the service at start (upgrade to head)."""
