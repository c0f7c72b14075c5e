"""Alembic migrations (run with `prm db upgrade`)."""
