"""The service opens its store at start: migrations, the CA from the store or its file, clear failures."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from spawner.service.app import HybridHubService


async def ca_of(app: HybridHubService) -> str:
    store, ca = await app.open_store()
    await store.close()
    return ca.public_line


@pytest.mark.asyncio
async def test_the_ca_is_made_once_in_the_store(tmp_path: Path) -> None:
    app = HybridHubService(db_url=f"sqlite:///{tmp_path / 'state' / 'hybridhub.sqlite'}")
    first = await ca_of(app)
    assert first == await ca_of(app) and first.startswith("ssh-ed25519 ")


@pytest.mark.asyncio
async def test_the_ca_key_file_is_used_when_set(tmp_path: Path) -> None:
    key_file = tmp_path / "ssh_ca"
    app = HybridHubService(db_url=f"sqlite:///{tmp_path / 'hybridhub.sqlite'}", ssh_ca_key_file=str(key_file))
    line = await ca_of(app)
    assert key_file.stat().st_mode & 0o777 == 0o600
    on_file = asyncssh.read_private_key(str(key_file)).export_public_key().decode().split()[1]
    assert line.split()[1] == on_file and await ca_of(app) == line
    key_file.chmod(0o640)
    with pytest.raises(SystemExit, match="chmod 600"):
        await ca_of(app)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("nonsense", "HybridHubService.db_url (nonsense)"),
        # nothing listens on port 1: the error names the server, never the password
        ("postgresql://hub:s3cret@127.0.0.1:1/hybridhub", "the store at 127.0.0.1:1/hybridhub failed"),
    ],
)
async def test_a_store_that_cannot_open_stops_the_service_saying_why(url: str, said: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        await HybridHubService(db_url=url).open_store()
    assert said in str(stopped.value) and "s3cret" not in str(stopped.value)
