"""Which public keys may log in as whom: the service's registered keys and the owner's authorized_keys."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import asyncssh

from .hubapi import AllowedKey, APIError, HubAPI
from .waiting import stopped_within

__all__ = ["ClientKeys", "authorized_keys_text"]

log = logging.getLogger(__name__)


def authorized_keys_text(keys: tuple[AllowedKey, ...], login: str) -> str:
    """The registered keys of hub user ``login``, one per line, in authorized_keys form.

    Only plain public key lines count: a registered line carrying options (``cert-authority``,
    ``command=``...) or anything else is left out, as the service's page offers none.
    """
    return "".join(f"{k.key.strip()}\n" for k in keys if k.user == login and _plain_key(k.key))


def _plain_key(line: str) -> bool:
    if "\n" in line.strip():
        return False
    try:
        asyncssh.import_public_key(line.strip())
    except (ValueError, asyncssh.KeyImportError):
        return False
    return True


# Fewest seconds between two fetches caused by unknown keys, whichever keys: made-up keys offered in
# a flood of connections cost the service at most five requests a second.
UNKNOWN_SPACING = 0.2


class ClientKeys:
    """A cached copy of the service's authorized-keys answer, refreshed every ``refresh_interval``
    seconds and when a client offers a key the copy does not hold, so that a key just registered
    works at once: each unknown key at most once every ``min_refresh_interval`` seconds, and unknown
    keys together at most every UNKNOWN_SPACING seconds.

    The owner's ``~/.ssh/authorized_keys`` is read at each login, so an edit there needs no restart;
    asyncssh applies its options (``from=``, ``command=``, ``no-port-forwarding``, ``permitopen=``...).
    """

    def __init__(
        self,
        api: HubAPI,
        *,
        owner: str,
        authorized_keys_file: str,
        refresh_interval: float,
        min_refresh_interval: float,
    ) -> None:
        self._api = api
        self.owner = owner
        self.authorized_keys_file = authorized_keys_file
        self._refresh_interval = refresh_interval
        self._min_refresh_interval = min_refresh_interval
        self.registered: tuple[AllowedKey, ...] = ()
        self._fetched_at = float("-inf")
        self._unknown: dict[bytes, float] = {}  # public key data -> when it last caused a fetch
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self, *, unless_younger_than: float = 0.0) -> bool:
        """Fetch the service's answer now, unless the copy is younger than ``unless_younger_than``
        seconds; False when it did not fetch or the fetch failed (the old copy stays)."""
        async with self._lock:
            # checked under the lock: logins that wait here together cause one fetch, not one each
            if time.monotonic() - self._fetched_at < unless_younger_than:
                return False
            self._fetched_at = time.monotonic()
            try:
                self.registered = await self._api.authorized_keys()
            except APIError as exc:
                log.warning("registered SSH keys not refreshed: %s", exc)
                return False
            return True

    async def refresh_for_unknown_key(self, key: asyncssh.SSHKey) -> None:
        """Refresh for ``key``, which the copy does not hold, unless that key caused a fetch less than
        ``min_refresh_interval`` seconds ago or the copy is younger than UNKNOWN_SPACING seconds (a
        login waiting for a fetch under way uses its answer)."""
        now = time.monotonic()
        if now - self._unknown.get(key.public_data, float("-inf")) < self._min_refresh_interval:
            return
        if len(self._unknown) > 10_000:  # bounded: a flood of made-up keys cannot fill memory
            self._unknown.clear()
        self._unknown[key.public_data] = now
        await self.refresh(unless_younger_than=UNKNOWN_SPACING)

    def _read_owner_file(self) -> str:
        path = Path(self.authorized_keys_file).expanduser()
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    async def for_login(self, login: str) -> asyncssh.SSHAuthorizedKeys | None:
        """Every key that may log in as ``login``, or None when there is none."""
        text = authorized_keys_text(self.registered, login)
        if login == self.owner and self.authorized_keys_file:
            text += await asyncio.to_thread(self._read_owner_file)
        if not text.strip():
            return None
        try:
            return asyncssh.import_authorized_keys(text)
        except (ValueError, asyncssh.KeyImportError) as exc:
            # one bad line must not lock everyone out: fall back to the lines that parse
            log.warning("an authorized key line for %s does not parse (%s); using the others", login, exc)
            good = [line for line in text.splitlines() if _parses(line)]
            return asyncssh.import_authorized_keys("\n".join(good) + "\n") if good else None

    def registered_key_matches(self, login: str, key: asyncssh.SSHKey) -> bool:
        """Whether ``key`` is registered to ``login`` in the current copy."""
        for allowed in self.registered:
            if allowed.user != login:
                continue
            try:
                if asyncssh.import_public_key(allowed.key).public_data == key.public_data:
                    return True
            except (ValueError, asyncssh.KeyImportError):
                continue
        return False

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_forever(), name="ssh-client-keys")

    async def _refresh_forever(self) -> None:
        while True:
            await self.refresh()
            if await stopped_within(self._stop, self._refresh_interval):
                return

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None


def _parses(line: str) -> bool:
    if not line.strip() or line.lstrip().startswith("#"):
        return False
    try:
        asyncssh.import_authorized_keys(line + "\n")
    except (ValueError, asyncssh.KeyImportError):
        return False
    return True
