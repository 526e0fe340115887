"""TLS with a self-signed certificate, and the Prometheus endpoint counting real calls."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import grpc
import pytest

from omniembed.serve import Client

from .conftest import TOKEN, unit_vectors


@pytest.fixture
def self_signed(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_tls_server_serves_a_client_that_trusts_its_certificate(make_server, self_signed):
    cert, key = self_signed
    server = make_server(tls_cert=str(cert), tls_key=str(key))
    with Client(server.target, token=TOKEN, root_certificates=cert.read_bytes()) as c:
        c.upsert(["t"], unit_vectors(1))
        assert c.search(unit_vectors(1)[0], k=1)[0].id == "t"


def test_plaintext_client_cannot_talk_to_a_tls_server(make_server, self_signed):
    cert, key = self_signed
    server = make_server(tls_cert=str(cert), tls_key=str(key))
    with Client(server.target, token=TOKEN, retries=0, timeout=3) as plain:
        with pytest.raises(grpc.RpcError) as info:
            plain.stats()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def test_metrics_endpoint_counts_calls_by_method_and_status(make_server):
    server = make_server(metrics_port=0)
    with Client(server.target, token=TOKEN) as c:
        c.upsert([f"m{i}" for i in range(5)], unit_vectors(5))
        c.search(unit_vectors(1)[0], k=2)
        c.search(unit_vectors(1)[0], k=2)
        with pytest.raises(grpc.RpcError):
            c.search([1.0, 2.0], k=2)
    text = _scrape(server.metrics_port)
    assert 'omniembed_rpcs_total{code="OK",method="Search"} 2.0' in text
    assert 'omniembed_rpcs_total{code="INVALID_ARGUMENT",method="Search"} 1.0' in text
    assert 'omniembed_rpcs_total{code="OK",method="Upsert"} 1.0' in text
    assert "omniembed_index_items 5.0" in text
    assert 'omniembed_rpc_seconds_count{method="Search"} 3.0' in text
    assert "omniembed_rpcs_in_flight 0.0" in text
