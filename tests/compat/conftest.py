"""SDK compatibility: the official ``nextmv`` SDK, unchanged, against a real daemon over HTTP."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nextmv import cloud
from nextmv.polling import PollingOptions

from tests.helpers import SAMPLES, Daemon, unique

NewApp = Callable[..., cloud.Application]
Push = Callable[[cloud.Application, Path], None]


@pytest.fixture(scope="module", autouse=True)
def _sdk_scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The SDK packs a folder input into ``tempfile.mkdtemp()`` and never removes it
    (~200 ``/tmp/nextmv-inputs-out-*`` a test suite): its temporary files go under
    pytest's base folder, which pytest prunes. Per module, so that tests elsewhere that
    need ``/tmp`` itself (a folder an unprivileged uid can reach) still get it."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("sdk-tempfile"))
    yield
    tempfile.tempdir = previous


@pytest.fixture(scope="session")
def client(daemon: Daemon) -> cloud.Client:
    return cloud.Client(api_key=daemon.key, url=daemon.url)


@pytest.fixture
def fast() -> PollingOptions:
    """Fresh per test: some SDK calls mutate the polling options they are given."""
    return PollingOptions(
        initial_delay=0.05, delay=0.05, backoff=0, jitter=0, max_delay=0.2, max_duration=60
    )


@pytest.fixture(scope="session")
def new_app(client: cloud.Client) -> NewApp:
    """Create an app with the SDK (``POST v1/applications``)."""

    def make(prefix: str = "sdk", name: str | None = None) -> cloud.Application:
        app_id = unique(prefix)
        return cloud.Application.new(client=client, id=app_id, name=name or f"SDK {app_id}")

    return make


@pytest.fixture(scope="session")
def push(tmp_path_factory: pytest.TempPathFactory) -> Push:
    """Push with the SDK's own ``Application.push``, from a private copy of the app folder."""

    def do(app: cloud.Application, app_dir: Path) -> None:
        copy = tmp_path_factory.mktemp("appdir") / app_dir.name
        shutil.copytree(app_dir, copy)
        app.push(app_dir=str(copy), verbose=False)

    return do


@pytest.fixture(scope="module")
def knapsack(new_app: NewApp, push: Push) -> cloud.Application:
    """One pushed knapsack app per module."""
    app = new_app("knapsack")
    push(app, SAMPLES / "knapsack")
    return app
