"""The service's one durable store: SQLAlchemy models, alembic migrations and an async access layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .access import DuplicateKey, KeyRecord, Store

__all__ = ["DuplicateKey", "KeyRecord", "Store"]


def __getattr__(name: str) -> Any:
    # lazy: importing the package does not import SQLAlchemy until the store is used
    if name in __all__:
        from . import access

        return getattr(access, name)
    raise AttributeError(name)
