from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from cookie_supervisor.bull import BullQueue
from tests.support import MediaServer, Receiver, RedisServer, cookie_jar, write_atomic


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs `-n 2 --dist loadgroup`): the tests that share a
    module-scoped fixture of their own module (a module's daemon, the built wheel, a simulation
    run) go to one worker as one group, so that fixture is made once, not once per worker."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        module = item.nodeid.split("::")[0]
        info = getattr(item, "_fixtureinfo", None)
        shared = info is not None and any(
            d.scope == "module" and d.baseid == module
            for name in info.names_closure
            for d in info.name2fixturedefs.get(name, ())
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(module))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A clean database on the session's redis-server."""
    import redis

    with redis.Redis.from_url(redis_server.url) as r:
        r.flushall()
    return redis_server.url


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[BullQueue]:
    """The daemon's queue `cookie-refresh` on a clean database."""
    client = Redis.from_url(redis_url)
    q = BullQueue(client, "cookie-refresh")
    yield q
    await q.aclose()
    await client.aclose()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for stopping and restarting it."""
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def media() -> Iterator[MediaServer]:
    """A local media host for real yt-dlp runs (see MediaServer for its routes)."""
    server = MediaServer()
    yield server
    server.shutdown()


@pytest.fixture
def jar(tmp_path: Path) -> Path:
    """A healthy, logged-in cookie file, 0600."""
    path = tmp_path / "cookies.txt"
    write_atomic(path, cookie_jar())
    return path


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(**kw: Any) -> Receiver:
        started.append(Receiver(**kw).start())
        return started[-1]

    yield make
    for r in started:
        r.stop()
