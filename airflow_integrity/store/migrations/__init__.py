"""Alembic migrations of the integrity store schema."""
