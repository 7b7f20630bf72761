"""The HTTP client's retries and one-line errors, through httpx's transport seam (no server)."""

from __future__ import annotations

import httpx
import pytest

from compiler.errors import ServerError
from compiler.reconcile.client import ApiSettings, NotFound, PrefectAPI

URL = "http://prefect.test/api"


def api_with(handler, retries: int = 5, **settings) -> PrefectAPI:
    return PrefectAPI(ApiSettings(url=URL, **settings), transport=httpx.MockTransport(handler), backoff=0.001,
                      retries=retries)


def test_retries_503_and_429_then_succeeds():
    answers = iter([httpx.Response(503), httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200, json=[])])
    api = api_with(lambda request: next(answers))
    assert api.post("/flows/filter", {}) == []
    assert api.stats.requests == 3 and api.stats.retries == 2 and api.stats.writes == 0


def test_gives_up_after_retries_with_one_line():
    api = api_with(lambda request: httpx.Response(503, json={"detail": "database is locked"}), retries=2)
    with pytest.raises(ServerError) as err:
        api.patch("/deployments/x", {})
    assert "503" in str(err.value) and "\n" not in str(err.value) and URL in str(err.value)


def test_connection_refused_names_url_and_setting():
    def refuse(request):
        raise httpx.ConnectError("[Errno 111] Connection refused")

    api = api_with(refuse, retries=1)
    with pytest.raises(ServerError, match=r"cannot reach the Prefect API at http://prefect.test/api .*PREFECT_API_URL"):
        api.server_version()


@pytest.mark.parametrize(("env", "hint"), [
    ({"PREFECT_API_AUTH_STRING": "admin:wrong"},
     "the server refused the user:password in PREFECT_API_AUTH_STRING; check it against the server's "
     "PREFECT_SERVER_API_AUTH_STRING"),
    ({"PREFECT_API_URL": "http://admin:wrong@prefect.test/api"},
     "the server refused the user:password in PREFECT_API_URL; check it against the server's "
     "PREFECT_SERVER_API_AUTH_STRING"),
    ({"PREFECT_API_KEY": "pnu_bad"}, "the server refused the key in PREFECT_API_KEY; check that it is valid"),
    ({}, "authentication is required; set PREFECT_API_AUTH_STRING (user:password) or PREFECT_API_KEY"),
])
def test_401_names_where_the_credentials_came_from(env, hint, tmp_path):
    """Issue 21 #19: a refused login asked to set a variable that was set (or came from the URL)."""
    settings = ApiSettings.from_env({"PREFECT_API_URL": URL, "PREFECT_HOME": str(tmp_path), **env})
    api = PrefectAPI(settings, transport=httpx.MockTransport(lambda request: httpx.Response(401)), backoff=0.001)
    with pytest.raises(ServerError) as err:
        api.get("/admin/version")
    assert hint in str(err.value) and "wrong" not in str(err.value) and "pnu_bad" not in str(err.value)
    assert "set PREFECT" not in str(err.value) or not env


def test_auth_headers():
    seen = {}

    def handler(request):
        seen["auth"] = request.headers.get("authorization")
        return httpx.Response(200, json="3.8.8")

    api_with(handler, auth_string="admin:pw").server_version()
    assert seen["auth"].startswith("Basic ")
    api_with(handler, api_key="k").server_version()
    assert seen["auth"] == "Bearer k"


def test_wrong_url_404_and_html():
    with pytest.raises(ServerError, match="/api"):
        api_with(lambda r: httpx.Response(404)).server_version()
    with pytest.raises(ServerError, match="not JSON"):
        api_with(lambda r: httpx.Response(200, text="<html>")).server_version()
    with pytest.raises(NotFound):
        api_with(lambda r: httpx.Response(404)).get("/block_types/slug/x")


def test_validation_errors_never_echo_secrets():
    body = {"detail": [{"loc": ["body", "data"], "msg": "bad", "input": {"password": "hunter2-secret"}}]}
    api = api_with(lambda r: httpx.Response(422, json=body))
    api.register_secret("hunter2-secret")
    with pytest.raises(ServerError) as err:
        api.post("/block_documents/", {"data": {"password": "hunter2-secret"}})
    assert "hunter2" not in str(err.value) and "body.data: bad" in str(err.value)


def test_pages_until_short_page():
    calls = []

    def handler(request):
        import json

        offset = json.loads(request.content)["offset"]
        calls.append(offset)
        return httpx.Response(200, json=[{"i": i} for i in range(200 if offset < 400 else 7)])

    rows = api_with(handler).filter_all("/deployments/filter", {})
    assert len(rows) == 407 and calls == [0, 200, 400]


def test_settings_from_env_and_profile(tmp_path):
    (tmp_path / "profiles.toml").write_text(
        'active = "local"\n[profiles.local]\nPREFECT_API_URL = "http://p:1/api"\nPREFECT_API_AUTH_STRING = "a:b"\n')
    s = ApiSettings.from_env({"PREFECT_HOME": str(tmp_path)})
    assert (s.url, s.auth_string) == ("http://p:1/api", "a:b") and "profile" in s.url_source
    s = ApiSettings.from_env({"PREFECT_HOME": str(tmp_path), "PREFECT_API_URL": "http://e:2/api/"})
    assert s.url == "http://e:2/api" and s.url_source == "PREFECT_API_URL"
    with pytest.raises(ServerError, match="PREFECT_API_URL is not set"):
        ApiSettings.from_env({"PREFECT_HOME": str(tmp_path / "none")})


def test_page_size_follows_the_servers_limit():
    import json

    calls = []

    def handler(request):
        body = json.loads(request.content)
        calls.append((body["limit"], body["offset"]))
        if body["limit"] > 100:
            return httpx.Response(422, json={"detail": "Invalid limit: must be less than or equal to 100."})
        return httpx.Response(200, json=[{"i": i} for i in range(100 if body["offset"] < 200 else 50)])

    api = api_with(handler)
    assert len(api.filter_all("/deployments/filter", {})) == 250
    assert calls == [(200, 0), (100, 0), (100, 100), (100, 200)] and api.page_size == 100


def test_other_422s_are_not_page_size_problems():
    api = api_with(lambda r: httpx.Response(422, json={"detail": "something else"}))
    with pytest.raises(ServerError, match="something else"):
        api.filter_all("/deployments/filter", {})


def test_credentials_in_the_url_become_basic_auth_and_are_never_shown():
    s = ApiSettings.from_env({"PREFECT_API_URL": "http://ci%40bot:p%3Ass-CANARY@prefect.test:4200/api/",
                              "PREFECT_HOME": "/nonexistent"})
    assert s.url == "http://prefect.test:4200/api" and s.auth_string == "ci@bot:p:ss-CANARY"
    seen = {}

    def handler(request):
        seen["auth"], seen["url"] = request.headers.get("authorization"), str(request.url)
        return httpx.Response(503, text="p:ss-CANARY echoed")

    api = PrefectAPI(s, transport=httpx.MockTransport(handler), backoff=0.001, retries=0)
    with pytest.raises(ServerError) as err:
        api.server_version()
    assert seen["auth"].startswith("Basic ") and "CANARY" not in seen["url"]
    assert "CANARY" not in str(err.value) and "http://prefect.test:4200/api" in str(err.value)
    # an explicit PREFECT_API_AUTH_STRING wins over the URL's
    s = ApiSettings.from_env({"PREFECT_API_URL": "http://u:p@h/api", "PREFECT_API_AUTH_STRING": "a:b",
                              "PREFECT_HOME": "/nonexistent"})
    assert (s.url, s.auth_string) == ("http://h/api", "a:b")


def test_conflict_and_not_found_are_user_errors_with_their_status():
    from compiler.errors import Conflict, UserError

    api = api_with(lambda r: httpx.Response(409, json={"detail": "A work pool with this name already exists."}))
    with pytest.raises(Conflict) as err:
        api.post("/work_pools/", {"name": "x"})
    assert isinstance(err.value, UserError) and err.value.status == 409 and "already exists" in str(err.value)
    with pytest.raises(NotFound) as err:
        api_with(lambda r: httpx.Response(404, json={"detail": "Deployment not found"})).delete("/deployments/x")
    assert isinstance(err.value, UserError) and "404" in str(err.value)


def test_a_write_sent_again_after_a_lost_answer_is_flagged():
    answers = iter([httpx.Response(502), httpx.Response(409, json={"detail": "exists"})])
    api = api_with(lambda r: next(answers))
    with pytest.raises(ServerError):
        api.post("/work_pools/", {"name": "x"})
    assert api.last_resent is True
    api = api_with(lambda r: httpx.Response(409, json={"detail": "exists"}))
    with pytest.raises(ServerError):
        api.post("/work_pools/", {"name": "x"})
    assert api.last_resent is False


@pytest.mark.parametrize("url", ["http://admin:s3cr3t-pw@[::1/api", "admin:s3cr3t-pw@127.0.0.1/api",
                                 "http:/admin:s3cr3t-pw@127.0.0.1/api", "ftp://admin:s3cr3t-pw@127.0.0.1/api"])
def test_a_malformed_api_url_is_one_line_without_its_credentials(url):
    """Issue 21 #5 and #12: a malformed PREFECT_API_URL was an internal InvalidURL, or printed its password."""
    with pytest.raises(ServerError) as err:
        ApiSettings.from_env({"PREFECT_API_URL": url})
    message = str(err.value)
    assert "PREFECT_API_URL is not a usable URL" in message and "s3cr3t" not in message and "\n" not in message
    assert "e.g. http://127.0.0.1:4200/api" in message


@pytest.mark.parametrize("answer", [{"hello": "world"}, [1, 2], "a string", [{"id": 1}, "x"]])
def test_a_server_answering_json_that_is_not_prefects_is_one_clear_error(answer, tmp_path, monkeypatch):
    """Issue 21 #12: a 200 answer that is not Prefect's JSON was an internal TypeError in plan."""
    from compiler.errors import UserError
    from compiler.reconcile.plan import PlanOptions
    from compiler.reconcile.prepare import prepare
    from tests.server.repo import Repo, project

    repo = Repo.create(tmp_path / "repo", [project("laos-malaria")])
    api = api_with(lambda request: httpx.Response(200, json=answer), retries=0)
    env = {"PREFECT_API_URL": URL, "CHAPCTL_FLOWS_DIR": str(repo.root), "LAOS_DHIS2_PASSWORD": "x"}
    with pytest.raises(UserError) as err:
        prepare(repo.root, api, env=env, options=PlanOptions())
    assert "not the API of a Prefect server" in str(err.value) and "\n" not in str(err.value)


def test_a_server_that_accepts_and_never_answers_is_said_within_the_probe_time():
    """Issue 21 #13: such a server made `status` wait 189 s (30 s per try, six tries)."""
    import socket
    import time

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts (the kernel does), never reads, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/api"
        api = PrefectAPI(ApiSettings(url=url), probe_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ServerError) as err:
            api.server_version()
        assert time.monotonic() - started < 5
    assert "accepted the connection but did not answer GET /admin/version within" in str(err.value)
    assert api.stats.requests == 1


@pytest.mark.parametrize("echo", ["json", "url", "url_plus", "base64", "basic"])
def test_a_secret_echoed_in_any_encoding_is_scrubbed(echo):
    """Issue 21 #5: a password with '"' or '\\' echoed by a proxy inside a JSON 400 body (so escaped)
    reached the error message; so did URL-encoded and base64 (basic auth) forms."""
    import base64
    import json
    from urllib.parse import quote, quote_plus

    secret = 'pa"ss\\wörd CANARY/+='
    forms = {"json": json.dumps({"detail": secret}), "url": quote(secret, safe=""),
             "url_plus": quote_plus(secret), "base64": base64.b64encode(secret.encode()).decode(),
             "basic": base64.b64encode(f"ci:{secret}".encode()).decode()}
    api = PrefectAPI(ApiSettings(url=URL, auth_string=f"ci:{secret}"),
                     transport=httpx.MockTransport(lambda r: httpx.Response(400, text="echo " + forms[echo])),
                     retries=0)
    with pytest.raises(ServerError) as err:
        api.post("/work_pools/", {"name": "x"})
    message = str(err.value)
    assert "CANARY" not in message and forms[echo] not in message, message


def test_a_create_whose_answer_was_lost_is_looked_for_before_it_is_sent_again():
    """Issue 21 #3: an automation is not unique on the server; the client's own re-send after a lost
    answer made a second one. `find_created` is asked first: what it finds is the answer, nothing is
    sent again."""
    sent, looked, found = [], [], {"id": "a1"}
    answers = iter([httpx.Response(502)])
    api = api_with(lambda r: sent.append(r.method) or next(answers))
    assert api.request("POST", "/automations/", json={}, find_created=lambda: looked.append(1) or found) == found
    assert sent == ["POST"] and looked == [1] and api.last_found is True and api.stats.retries == 0
    assert api.stats.writes == 1


def test_a_create_not_found_is_sent_again_and_a_refused_connection_is_not_looked_for():
    looked = []
    answers = iter([httpx.Response(504), httpx.Response(201, json={"id": "a2"})])
    api = api_with(lambda r: next(answers))
    assert api.request("POST", "/automations/", json={}, find_created=lambda: looked.append(1)) == {"id": "a2"}
    assert looked == [1] and api.last_resent is True and api.last_found is False

    def refuse_once(request, refused=[]):
        if not refused:
            refused.append(1)
            raise httpx.ConnectError("[Errno 111] Connection refused")  # never reached the server
        return httpx.Response(201, json={"id": "a3"})

    looked.clear()
    api = api_with(refuse_once)
    assert api.request("POST", "/automations/", json={}, find_created=lambda: looked.append(1)) == {"id": "a3"}
    assert looked == []


def test_a_create_that_ends_in_a_lost_answer_is_looked_for_once_more_and_keeps_last_resent():
    """The last re-send's answer lost too: the create may be on the server all the same. The hook's
    own reads do not reset `last_resent` when it finds nothing."""
    looked = []

    def handler(request):
        if request.url.path.endswith("/filter"):
            return httpx.Response(200, json=[])
        return httpx.Response(502)

    api = api_with(handler, retries=2)

    def find():
        looked.append(1)
        api.post("/automations/filter", {})  # a read of its own
        return {"id": "late"} if len(looked) == 3 else None

    assert api.request("POST", "/automations/", json={}, find_created=find) == {"id": "late"}
    assert len(looked) == 3 and api.last_found is True  # before each of the 2 re-sends, and at the end
    looked.clear()

    def find_nothing():
        looked.append(1)
        api.post("/automations/filter", {})

    with pytest.raises(ServerError, match="kept answering 502"):
        api.request("POST", "/automations/", json={}, find_created=find_nothing)
    assert api.last_resent is True and api.last_found is False and len(looked) == 3
