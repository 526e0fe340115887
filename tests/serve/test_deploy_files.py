"""The deployment files (deploy/) stay in step with the code: every flag the replicas are started with is one
`omniembed serve` accepts, Envoy health-checks the service name the server registers, and the Dockerfile copies
folders that exist. (No container runtime here: the stack itself is not started by the tests.)"""

import pathlib
import re

import yaml

from omniembed.serve.__main__ import build_parser
from omniembed.serve.stubs import SERVICE_NAME

DEPLOY = pathlib.Path(__file__).resolve().parents[2] / "deploy"


def test_the_compose_replicas_start_with_flags_serve_accepts_on_a_milvus_uri():
    compose = yaml.safe_load((DEPLOY / "milvus" / "compose.yaml").read_text())
    serve = compose["services"]["serve"]
    argv = [re.sub(r"\$\{[^}]*\}", "x", a) for a in serve["command"]]
    args = build_parser().parse_args(["--host", "0.0.0.0", "--port", "50051", *argv])
    assert args.index.startswith("http://milvus:19530") and args.token and args.bundle == "/bundle"
    assert {"milvus", "envoy", "etcd", "minio"} <= set(compose["services"])
    assert compose["services"]["envoy"]["ports"] == ["127.0.0.1:50051:50051"]  # published on loopback only


def test_envoy_balances_http2_per_call_and_health_checks_the_service():
    envoy = yaml.safe_load((DEPLOY / "milvus" / "envoy.yaml").read_text())
    cluster = envoy["static_resources"]["clusters"][0]
    assert cluster["type"] == "STRICT_DNS" and cluster["lb_policy"] == "ROUND_ROBIN"
    assert cluster["health_checks"][0]["grpc_health_check"]["service_name"] == SERVICE_NAME
    manager = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert manager["codec_type"] == "HTTP2"


def test_the_dockerfile_copies_what_the_package_is_built_from():
    root = DEPLOY.parent
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (root / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
