"""The store's tables as SQLAlchemy models: what the migrations create and the access layer reads."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["VERSION_TABLE", "Base", "CloudUsageRow", "RunMoveRow", "RunRow", "SshCa", "SshKey"]

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


class RunRow(Base):
    """A run a user submitted: where it went and why, and where it stands in the service's queue."""

    __tablename__ = "runs"
    # Kubernetes names are unique per kind and namespace; the registry makes them unique per user
    # across clusters, so a name always means one run wherever it went.
    __table_args__ = (UniqueConstraint("user", "kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(253))
    # the user's run namespace; the same name in every cluster
    namespace: Mapped[str] = mapped_column(String(63))
    # "auto" or the cluster the user pinned
    wanted: Mapped[str] = mapped_column(String(63))
    # seconds the run may wait for on-prem before it goes to the cloud
    max_wait: Mapped[float] = mapped_column(Float)
    # the cluster the run is in or goes to; None before the service chose
    cluster: Mapped[str | None] = mapped_column(String(63), nullable=True)
    # submitting, queued, admitted or deleting (see spawner.service.runs.registry)
    state: Mapped[str] = mapped_column(String(16), index=True)
    # the GPU gang as JSON: [[gpus, product], ...], one entry per pod that runs at once
    gang: Mapped[str] = mapped_column(Text)
    gpus: Mapped[int] = mapped_column(Integer)
    # the run as accepted, JSON: what is created (again, after a crash) in the cluster
    manifest: Mapped[str] = mapped_column(Text)
    # why the run is where it is, or why it waits, in a sentence for the user
    reason: Mapped[str] = mapped_column(Text, default="")
    # the object's uid in its cluster, once created
    uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    submitted: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    admitted: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RunMoveRow(Base):
    """A run moved from one cluster to another before it started: where from, where to, when and why,
    and the copy it left behind in a cluster that did not answer, until that copy is deleted. A row
    outlives its run while a copy is left, so that the copy is deleted even after the run is."""

    __tablename__ = "run_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    # the run's identity, to find the copy it left without its row
    user: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(253))
    namespace: Mapped[str] = mapped_column(String(63))
    source: Mapped[str] = mapped_column(String(63))
    target: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # why it moved, in a sentence for the user
    reason: Mapped[str] = mapped_column(Text)
    # whether a held-back copy may be left in the source, which did not answer when the run moved
    left_behind: Mapped[bool] = mapped_column(Boolean)
    # that copy's uid when known; a copy whose uid differs is not this run's and is never deleted
    left_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # when the copy was found deleted; None while it may still be there
    cleaned: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CloudUsageRow(Base):
    """GPU-seconds a user's pods held in the cloud clusters in one budget period (the cloud budget's
    ledger): the service adds what its inventory saw on every admission pass."""

    __tablename__ = "cloud_usage"
    __table_args__ = (UniqueConstraint("user", "period_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(255))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    gpu_seconds: Mapped[float] = mapped_column(Float)
