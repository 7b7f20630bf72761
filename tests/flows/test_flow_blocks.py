"""The credentials block's HTTP clients: URLs, basic auth, and which requests are retried."""

from __future__ import annotations

import socket

import httpx
import pytest

from flows.blocks import Dhis2Credentials
from tests.flows.helpers import PASSWORD, USERNAME


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_base_url_is_normalised_and_context_paths_are_kept() -> None:
    creds = Dhis2Credentials(base_url=" https://dhis2.example.org/hmis/ ", username="u", password="p")

    assert creds.base_url == "https://dhis2.example.org/hmis"
    with creds.dhis2_client() as dhis2, creds.chap_client() as chap:
        assert str(dhis2.build_request("GET", "/api/system/info").url) == \
            "https://dhis2.example.org/hmis/api/system/info"
        assert str(chap.build_request("GET", "/v1/jobs").url) == \
            "https://dhis2.example.org/hmis/api/routes/chap/run/v1/jobs"


@pytest.mark.parametrize("bad", ["dhis2.example.org", "ftp://dhis2.example.org", "https://"])
def test_base_url_must_be_an_http_url(bad: str) -> None:
    with pytest.raises(ValueError, match="base_url must be an http"):
        Dhis2Credentials(base_url=bad, username="u", password="p")


def test_gets_are_retried_with_growing_backoff_on_connection_errors() -> None:
    pauses: list[float] = []
    creds = Dhis2Credentials(base_url=f"http://127.0.0.1:{closed_port()}", username="u", password="p")

    with creds.dhis2_client(sleep=pauses.append) as client, pytest.raises(httpx.ConnectError):
        client.get("/api/system/info")

    assert len(pauses) == 2  # three attempts in all
    assert 0.5 <= pauses[0] <= 0.75 and 1.0 <= pauses[1] <= 1.5


def test_posts_are_never_retried() -> None:
    pauses: list[float] = []
    creds = Dhis2Credentials(base_url=f"http://127.0.0.1:{closed_port()}", username="u", password="p")

    with creds.chap_client(sleep=pauses.append) as client, pytest.raises(httpx.ConnectError):
        client.post("/v1/crud/prediction-setups/3/run", json={})

    assert pauses == []


def test_5xx_gets_are_retried_and_4xx_are_not(fake, fake_server) -> None:
    fake.faults(http_errors=[{"path": "/api/system/info", "status": 502, "times": 2},
                             {"path": "/api/routes/chap/run/system/info", "status": 404, "times": 1}])
    creds = Dhis2Credentials(base_url=fake_server.url, username=USERNAME, password=PASSWORD)

    with creds.dhis2_client(sleep=lambda _: None) as dhis2, creds.chap_client(sleep=lambda _: None) as chap:
        assert dhis2.get("/api/system/info").status_code == 200
        assert chap.get("/system/info").status_code == 404

    assert [(r["path"], r["status"], r["user"]) for r in fake.requests()] == [
        ("/api/system/info", 502, USERNAME), ("/api/system/info", 502, USERNAME), ("/api/system/info", 200, USERNAME),
        ("/api/routes/chap/run/system/info", 404, USERNAME)]
