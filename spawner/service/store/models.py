"""The store's tables as SQLAlchemy models: what the migrations create and the access layer reads."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["VERSION_TABLE", "Base", "SshCa", "SshKey"]

# alembic's own table, named so that the store may share a database with other applications
VERSION_TABLE = "hybridhub_alembic_version"

# constraint names fixed by convention, so that migrations on sqlite and PostgreSQL name them alike
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SshKey(Base):
    """A public key a user registered; the gateway and the pods' servers let its holder in as them."""

    __tablename__ = "ssh_keys"
    # a key belongs to one user only: a key registered twice would let one user in as another
    __table_args__ = (UniqueConstraint("fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # the hub's user name
    user: Mapped[str] = mapped_column(String(255), index=True)
    # the OpenSSH key type, e.g. ssh-ed25519
    key_type: Mapped[str] = mapped_column(String(64))
    # the key's base64 blob as it appears in an authorized_keys line
    key_blob: Mapped[str] = mapped_column(Text)
    # SHA256:... as ssh-keygen -l prints it
    fingerprint: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(String(255), default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SshCa(Base):
    """The SSH certificate authority that signs the pods' host certificates: one row, id 1."""

    __tablename__ = "ssh_ca"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # the private key in OpenSSH format: whoever reads this table can sign host certificates
    private_key: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
