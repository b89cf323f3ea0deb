"""Access control with real TLS and real clients: a certificate made here for 127.0.0.1 (with
``cryptography``), the server started with ``--ssl-certfile``/``--ssl-keyfile`` and a bearer token
from ``--token-file`` or ``PIPELINE_SERVE_TOKEN``, then httpx and tritonclient (HTTP and gRPC, over
TLS) with and without the token; CORS off by default and on for the origins named; and the mistakes
an operator can make (a key without its certificate, an empty token file) stop the server with exit 2."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from processes import Server, deploy, free_port, serving

TOKEN = "s3cret-token-0123456789"
ROW = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
BODY = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": ROW.ravel().tolist()}]}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (folder / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return folder / "server.crt", folder / "server.key"


@pytest.fixture(scope="module")
def server(iris_bundle: Path, certificate: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("access")
    (folder / "token").write_text(TOKEN + "\n")
    cert, key = certificate
    with serving([f"iris:1={iris_bundle}", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--token-file", str(folder / "token")],
                 folder, grpc=True, tls_ca=cert) as running:
        yield running


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_rest_over_tls_needs_the_token_except_for_health(server, certificate):
    ca = ssl.create_default_context(cafile=str(certificate[0]))
    assert httpx.get(f"{server.url}/v2/health/ready", verify=ca).status_code == 200
    assert httpx.get(f"{server.url}/v2/health/live", verify=ca).status_code == 200
    for headers in ({}, _auth("wrong"), {"Authorization": TOKEN}):
        for method, path in (("POST", "/v2/models/iris/infer"), ("GET", "/v2/models/iris"), ("GET", "/metrics"),
                             ("POST", "/v2/repository/index"), ("POST", "/v2/repository/models/iris/unload")):
            response = httpx.request(method, f"{server.url}{path}", json=BODY, headers=headers, verify=ca)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"] == "Bearer" and "bearer token" in response.json()["error"]
    response = httpx.post(f"{server.url}/v2/models/iris/infer", json=BODY, headers=_auth(), verify=ca)
    assert response.status_code == 200 and response.json()["model_name"] == "iris"
    assert httpx.get(f"{server.url}/metrics", headers=_auth(), verify=ca).status_code == 200
    with pytest.raises(httpx.TransportError):  # plain HTTP to the TLS port
        httpx.get(f"http://127.0.0.1:{server.port}/v2/health/ready")
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate
        httpx.get(f"{server.url}/v2/health/ready")


def test_tritonclient_http_with_the_token_over_tls(server, certificate):
    client = triton.InferenceServerClient(url=server.address, ssl=True, ssl_options={"ca_certs": str(certificate[0])})
    assert client.is_server_ready()
    tensor = triton.InferInput("input", [1, 4], "FP32")
    tensor.set_data_from_numpy(ROW)
    with pytest.raises(InferenceServerException, match="bearer token"):
        client.infer("iris", [tensor])
    assert client.infer("iris", [tensor], headers=_auth()).as_numpy("probabilities").shape == (1, 3)


def test_grpc_over_tls_needs_the_token_except_for_health(server, certificate):
    root = certificate[0].read_bytes()
    client = triton_grpc.InferenceServerClient(url=server.grpc_address, ssl=True, root_certificates=str(certificate[0]))
    assert client.is_server_live() and client.is_server_ready()
    tensor = triton_grpc.InferInput("input", [1, 4], "FP32")
    tensor.set_data_from_numpy(ROW)
    for headers in (None, {"authorization": "Bearer wrong"}):
        with pytest.raises(InferenceServerException) as caught:
            client.infer("iris", [tensor], headers=headers)
        assert caught.value.status() == "StatusCode.UNAUTHENTICATED" and "bearer token" in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_repository_index()
    assert caught.value.status() == "StatusCode.UNAUTHENTICATED"
    result = client.infer("iris", [tensor], headers={"authorization": f"Bearer {TOKEN}"})
    plain = httpx.post(f"{server.url}/v2/models/iris/infer", json=BODY, headers=_auth(), verify=ssl.create_default_context(cafile=str(certificate[0]))).json()
    probabilities = next(o for o in plain["outputs"] if o["name"] == "probabilities")["data"]
    np.testing.assert_array_equal(result.as_numpy("probabilities").ravel(), np.asarray(probabilities, np.float32))
    with grpc.secure_channel(server.grpc_address, grpc.ssl_channel_credentials(root)) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert check.status == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(server.grpc_address) as channel:  # plain text to the TLS port
        with pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)


def test_the_token_may_come_from_the_environment_and_cors_is_off_by_default(iris_bundle, tmp_path):
    with serving([f"iris:1={iris_bundle}", "--no-access-log"], tmp_path, env={"PIPELINE_SERVE_TOKEN": TOKEN}) as server:
        assert httpx.post(f"{server.url}/v2/models/iris/infer", json=BODY).status_code == 401
        assert httpx.post(f"{server.url}/v2/models/iris/infer", json=BODY, headers=_auth()).status_code == 200
        preflight = httpx.options(f"{server.url}/v2/models/iris/infer", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers
    assert "from PIPELINE_SERVE_TOKEN" in server.output() and TOKEN not in server.output()


def test_cors_answers_the_origins_named_and_no_other(iris_bundle, tmp_path):
    with serving([f"iris:1={iris_bundle}", "--cors-origin", "https://app.example.com", "--no-access-log"], tmp_path,
                 env={"PIPELINE_SERVE_TOKEN": TOKEN}) as server:
        asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
        preflight = httpx.options(f"{server.url}/v2/models/iris/infer", headers={"Origin": "https://app.example.com", **asked})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        other = httpx.options(f"{server.url}/v2/models/iris/infer", headers={"Origin": "https://evil.example.net", **asked})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        answer = httpx.post(f"{server.url}/v2/models/iris/infer", json=BODY, headers={"Origin": "https://app.example.com", **_auth()})
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize("case", ["key-without-cert", "cert-without-key", "mismatch", "empty-token", "missing-token-file"])
def test_an_access_mistake_stops_the_server_with_exit_2(iris_bundle, certificate, tmp_path, case):
    cert, key = certificate
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "other.key").write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    options, words = {
        "key-without-cert": (["--ssl-keyfile", key], "--ssl-keyfile needs --ssl-certfile"),
        "cert-without-key": (["--ssl-certfile", cert], "--ssl-certfile needs --ssl-keyfile"),
        "mismatch": (["--ssl-certfile", cert, "--ssl-keyfile", tmp_path / "other.key"], "do not load as a certificate and its key"),
        "empty-token": (["--token-file", tmp_path / "empty"], "holds an empty token"),
        "missing-token-file": (["--token-file", tmp_path / "absent"], "cannot read it"),
    }[case]
    done = deploy("serve", iris_bundle, "--port", str(free_port()), *options, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr
    assert "--token " not in deploy("serve", "--help", cwd=tmp_path).stdout  # a token is never a command-line argument
