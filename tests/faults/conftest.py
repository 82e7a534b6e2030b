
import pytest


@pytest.fixture(scope="package")
def prefect_server(tmp_path_factory):
    """A real Prefect server (SQLite, loopback) for the fault tests; the flows run in child processes."""
    from flows.server import LocalPrefect

    server = LocalPrefect(home=tmp_path_factory.mktemp("prefect"), worker=False)
    with server:
        yield server


@pytest.fixture
def flow_env(prefect_server) -> dict[str, str]:
    return {**prefect_server.env(), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONUNBUFFERED": "1"}
