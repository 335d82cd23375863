"""Access control and metrics of the HTTP service, over real HTTP(S) on 127.0.0.1: bearer tokens
(401 with nothing learned, each token its own key sets, a bound per token), TLS through
uvicorn's options with a self-signed certificate made here, and ``/metrics`` read by
prometheus_client's own parser as requests are made."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sklearn_fhe.cli import main
from sklearn_fhe.deployment import RemoteClient, ServiceError
from sklearn_fhe.deployment.access import Tokens, TokenFileError
from sklearn_fhe.deployment.local_service import LocalService

pytest.importorskip("fastapi")
pytestmark = pytest.mark.execute

TOKEN_A = "token-a-" + "a" * 24
TOKEN_B = "token-b-" + "b" * 24
PER_TOKEN = 2


def self_signed(directory) -> tuple:
    """(key file, certificate file) of a certificate for 127.0.0.1, made by openssl now."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test certificate")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert


@pytest.fixture(scope="module")
def services(saved_forest, tmp_path_factory):
    """A service with two tokens and a per-token bound, and an HTTPS service; started together."""
    _, _, path = saved_forest
    directory = tmp_path_factory.mktemp("access")
    tokens = directory / "tokens.txt"
    tokens.write_text(f"# the clients of this service\n{TOKEN_A}\n\n{TOKEN_B}\n")
    key, cert = self_signed(directory)
    configurations = [
        (["--token-file", str(tokens), "--max-key-sets-per-token", str(PER_TOKEN)],
         {"token": TOKEN_A}),
        (["--ssl-keyfile", str(key), "--ssl-certfile", str(cert)], {"ca_file": cert}),
    ]
    with ThreadPoolExecutor(2) as pool:
        tokened, tls = pool.map(lambda c: LocalService(path, c[0], **c[1]), configurations)
    with tokened, tls:
        yield {"tokens": tokened, "tls": tls, "cert": cert}


def request(url: str, method: str = "GET", body: bytes = None, headers: dict = None
            ) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of a request by hand."""
    headers = {"Content-Type": "application/octet-stream", **(headers or {})}
    call = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(call, timeout=120) as response:
            return response.status, json.loads(response.read() or b"{}"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- tokens ------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, bearer("wrong-" + "x" * 30), {"Authorization": TOKEN_A},
                                     {"Authorization": f"Basic {TOKEN_A}"}],
                         ids=["missing", "wrong", "no-scheme", "other-scheme"])
def test_missing_or_wrong_token_is_401_with_nothing_learned(services, headers):
    service = services["tokens"]
    answers = [request(service.url + path, method, body, headers) for path, method, body in [
        ("/model", "GET", None), ("/metrics", "GET", None), ("/keys", "POST", b"\0" * 100),
        ("/predict", "POST", b"\0" * 100), ("/no-such-path", "GET", None)]]
    for status, payload, answer_headers in answers:
        assert status == 401 and answer_headers["www-authenticate"] == "Bearer"
        assert payload == answers[0][1]  # the same words whatever the path: nothing learned
    assert "Authorization: Bearer" in answers[0][1]["detail"]
    # /health answers a liveness probe, and says nothing else without a token
    assert request(service.url + "/health", headers=headers)[1] == {"status": "ok"}


def test_remote_client_without_or_with_a_wrong_token(services):
    url = services["tokens"].url
    for token in (None, "not-" + TOKEN_A):
        with pytest.raises(ServiceError) as refused:
            RemoteClient(url, token=token)
        assert refused.value.status == 401


def test_each_token_uses_only_its_own_key_sets(services, saved_forest):
    model, rows, _ = saved_forest
    service = services["tokens"]
    a = RemoteClient(service.url, seed=0, token=TOKEN_A)
    np.testing.assert_array_equal(a.predict(rows), model.predict(rows, fhe="disable"))
    # token B names A's key id: the same answer as an id that does not exist
    status, payload, _ = request(service.url + "/predict", "POST", a.client.encrypt(rows[:1]),
                                 {**bearer(TOKEN_B), "X-Key-Id": a.key_id})
    assert status == 404 and "Unknown or expired key id" in payload["detail"]


def test_per_token_bound_on_key_sets(services, saved_forest):
    model, rows, _ = saved_forest
    service = services["tokens"]
    clients = [RemoteClient(service.url, seed=seed, token=TOKEN_B) for seed in (1, 2, 3)]
    first = clients[0]
    status, _, _ = request(service.url + "/predict", "POST", first.client.encrypt(rows[:1]),
                           {**bearer(TOKEN_B), "X-Key-Id": first.key_id})
    assert status == 404  # B's least recently used key set was let go: B holds 2
    held = service.health()["key_sets"]
    assert held <= 1 + PER_TOKEN  # A's (earlier test) and B's two
    np.testing.assert_array_equal(first.predict(rows[:1]), model.predict(rows[:1], fhe="disable"))


def test_token_files_are_checked(tmp_path, saved_forest, capsys):
    short = tmp_path / "short.txt"
    short.write_text("abc\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(TokenFileError, match="at least 16 characters"):
        Tokens.from_file(short)
    with pytest.raises(TokenFileError, match="holds no token"):
        Tokens.from_file(empty)
    assert main(["serve", str(saved_forest[2]), "--token-file", str(tmp_path / "none")]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert main(["serve", str(saved_forest[2]), "--ssl-keyfile", "key.pem"]) == 2
    assert "needs both --ssl-keyfile and --ssl-certfile" in capsys.readouterr().err


# -- TLS ---------------------------------------------------------------------------------------
def test_tls_service_answers_a_client_with_the_ca_file(services, saved_forest):
    model, rows, _ = saved_forest
    service = services["tls"]
    assert service.url.startswith("https://127.0.0.1:")
    remote = RemoteClient(service.url, seed=0, ca_file=services["cert"])
    np.testing.assert_array_equal(remote.predict(rows), model.predict(rows, fhe="disable"))
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        RemoteClient(service.url)  # the system's authorities do not know this certificate
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(service.url.replace("https:", "http:") + "/health", timeout=10)


# -- metrics -----------------------------------------------------------------------------------
def scrape(service) -> dict:
    """{(name, labels as a sorted tuple): value} of the service's /metrics, parsed by
    prometheus_client."""
    text = service.get("/metrics").decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_requests(services, saved_forest):
    _, rows, _ = saved_forest
    service = services["tokens"]
    remote = RemoteClient(service.url, seed=0, token=TOKEN_A)
    before = scrape(service)
    remote.predict(rows[:3])
    remote.predict(rows[:2])
    request(service.url + "/model")  # no token: 401
    after = scrape(service)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("sklearn_fhe_requests_total", endpoint="/predict", status="200") == 2
    assert moved("sklearn_fhe_requests_total", endpoint="/model", status="401") == 1
    assert moved("sklearn_fhe_requests_total", endpoint="/metrics", status="200") == 1
    assert moved("sklearn_fhe_rows_total") == 5
    assert moved("sklearn_fhe_request_seconds_count", endpoint="/predict") == 2
    sent = len(remote.client.encrypt(rows[:3]))
    assert moved("sklearn_fhe_request_bytes_total", endpoint="/predict") >= sent
    assert moved("sklearn_fhe_response_bytes_total", endpoint="/predict") > 0
    assert value(after, "sklearn_fhe_key_sets", tier="memory") >= 1
    assert value(after, "sklearn_fhe_key_bytes", tier="memory") > 0
    assert ("sklearn_fhe_pending_requests", ()) in after
    assert value(after, "process_resident_memory_bytes") > 0
