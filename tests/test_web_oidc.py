"""Sign-in by OpenID Connect against a real local provider (oidc-provider-mock, an Authlib server).

The whole flow runs over HTTP: the app redirects to the provider with state, nonce and a PKCE
challenge; the "person" picks their account at the provider; the provider redirects back with a
code; the app exchanges it (with the PKCE verifier) for tokens and checks the ID token. The
provider is wrapped to record the token request, so the test can check the verifier against the
challenge (the mock itself does not check PKCE).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import werkzeug.serving
from web_support import build_demo, make_client, web_settings, worker_of

from watchdog.casestore import WorkerRole
from watchdog.settings import load_settings

oidc_provider_mock = pytest.importorskip("oidc_provider_mock")


@pytest.fixture
def provider():
    app = oidc_provider_mock.app(require_nonce=True)
    seen: list[dict] = []
    inner = app.wsgi_app

    def recording(environ, start_response):
        if environ["PATH_INFO"].endswith("/token"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            seen.append({k: v[0] for k, v in parse_qs(body.decode()).items()})
            import io
            environ["wsgi.input"] = io.BytesIO(body)
        return inner(environ, start_response)

    app.wsgi_app = recording
    server = werkzeug.serving.make_server("localhost", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_port}", seen
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _settings(database_url, issuer, **web):
    return load_settings(None, database_url=database_url, web={
        "oidc_issuer": issuer, "oidc_client_id": "watchdog-test", "oidc_client_secret": "s3cret",
        "secure_cookies": False, **web})


def _sign_in_at_provider(client, subject: str) -> httpx.Response:
    """Follow the app to the provider, choose ``subject`` there, and come back with the code."""
    start = client.get("/logind/oidc")
    assert start.status_code == 302
    authorize = start.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["nonce"][0] and query["state"][0]
    chosen = httpx.post(authorize, data={"sub": subject, "action": "allow"}, follow_redirects=False)
    assert chosen.status_code in (302, 303), chosen.text[:300]
    back = urlsplit(chosen.headers["location"])
    return client.get(f"{back.path}?{back.query}"), query["code_challenge"][0]


def test_a_worker_signs_in_through_the_identity_provider_with_pkce(engine, database_url, provider):
    issuer, seen = provider
    settings = _settings(database_url, issuer)
    build_demo(engine, web_settings(database_url))
    caseworker = worker_of(engine, WorkerRole.CASEWORKER, 1)
    with make_client(engine, settings) as client:
        assert "Log ind med kommunens login" in client.get("/logind").text
        answer, challenge = _sign_in_at_provider(client, caseworker.email.upper())  # case-insensitive match
        assert answer.status_code == 303 and answer.headers["location"] == "/frister"
        page = client.get("/frister")
        assert page.status_code == 200 and caseworker.name in page.text
    verifier = seen[-1]["code_verifier"]
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert digest == challenge


def test_a_person_without_an_active_worker_gets_the_danish_no_access_page(engine, database_url, provider):
    issuer, _ = provider
    build_demo(engine, web_settings(database_url))
    with make_client(engine, _settings(database_url, issuer)) as client:
        answer, _ = _sign_in_at_provider(client, "stranger@elsewhere.example")
        assert answer.status_code == 403
        assert "Ingen adgang" in answer.text and "ingen aktiv medarbejder" in answer.text
        assert client.get("/frister").status_code == 303  # still not signed in


def test_the_claim_that_names_the_person_is_configurable(engine, database_url, provider):
    issuer, _ = provider
    build_demo(engine, web_settings(database_url))
    leader = worker_of(engine, WorkerRole.LEADER)
    # Entra ID's UPN arrives as preferred_username; the mock sets email = the chosen subject,
    # so with oidc_claim = "preferred_username" (absent here) nobody is matched.
    with make_client(engine, _settings(database_url, issuer, oidc_claim="preferred_username")) as client:
        answer, _ = _sign_in_at_provider(client, leader.email)
        assert answer.status_code == 403
    with make_client(engine, _settings(database_url, issuer, oidc_claim="email")) as client:
        answer, _ = _sign_in_at_provider(client, leader.email)
        assert answer.status_code == 303 and answer.headers["location"] == "/team"


def test_a_callback_with_a_forged_state_is_refused(engine, database_url, provider):
    issuer, _ = provider
    build_demo(engine, web_settings(database_url))
    with make_client(engine, _settings(database_url, issuer)) as client:
        client.get("/logind/oidc")
        forged = client.get("/logind/svar?code=abc&state=not-the-one")
    assert forged.status_code == 400 and "Login kunne ikke gennemføres" in forged.text
