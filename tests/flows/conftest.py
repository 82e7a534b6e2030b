import os

import pytest


@pytest.fixture(scope="session")
def local_prefect(tmp_path_factory):
    """A real Prefect server (SQLite, loopback), no worker; PREFECT_API_URL points at it in this process
    and in `local_prefect.env()` for child processes. (tests/flows/test_prefect.py starts its own, with
    a worker.)"""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import LocalPrefect

    server = LocalPrefect(home=tmp_path_factory.mktemp("prefect_shared"), worker=False)
    with server, temporary_settings({PREFECT_API_URL: server.api_url}):
        os.environ["PREFECT_API_URL"] = server.api_url
        try:
            yield server
        finally:
            os.environ.pop("PREFECT_API_URL", None)
