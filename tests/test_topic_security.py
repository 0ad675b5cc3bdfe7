"""A depth topic never serves the network unasked: an endpoint other machines can reach needs
``expose_to_network`` (``check`` fails without it) and is logged; for remote use, zenoh's TLS
and user/password authentication come from the config, and only a subscriber holding the CA
(and the password) receives frames. Every server here listens on 127.0.0.1 only."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgedepth.engine.config import validate
from edgedepth.topic import TopicSubscriber
from edgedepth.topic.endpoints import exposure, parse_endpoint
from tests.conftest import POSIX_SIGNALS, last_line, run_edgedepth, synthetic_config
from tests.test_topic import free_port

zenoh = pytest.importorskip("zenoh", reason="eclipse-zenoh is not installed (edgedepth[zenoh])")


@pytest.mark.parametrize(
    ("transport", "endpoint"),
    [
        ("zmq", "tcp://0.0.0.0:{port}"),
        ("zmq", "tcp://*:{port}"),
        ("zmq", "tcp://[::]:{port}"),
        ("zenoh", "tcp/0.0.0.0:{port}"),
        ("zenoh", "tcp://0.0.0.0:{port}"),
    ],
)
def test_an_endpoint_for_every_network_needs_the_opt_in(
    tmp_path, write_config, transport, endpoint
):
    endpoint = endpoint.format(port=free_port())
    sink = {"type": "topic", "transport": transport, "endpoint": endpoint}
    config = write_config(synthetic_config(tmp_path, sinks=[sink]))
    for command in ("check", "run"):
        result = run_edgedepth(command, "--config", str(config))
        assert result.returncode == 2, result.stderr
        line = last_line(result)
        assert f"sinks[0]: endpoint {endpoint} serves every network this machine is on" in line
        assert "set expose_to_network: true" in line and "topic:" not in result.stderr


def test_loopback_endpoints_need_no_opt_in():
    local = [
        "tcp://127.0.0.1:5556", "tcp://localhost:5556", "tcp/[::1]:7447", "tcp://127.0.0.1:*",
        "ipc:///tmp/depth", "unixsock-stream//tmp/depth.sock",
    ]  # fmt: skip
    for text in local:
        assert exposure(parse_endpoint(text)) is None, text
    assert exposure(parse_endpoint("tcp://192.168.1.20:5556")) == "the network of 192.168.1.20"
    with pytest.raises(ValueError, match="port 'abc' is not a number"):
        parse_endpoint("tcp://nonsense:abc")


def test_an_opted_in_endpoint_is_logged_with_who_can_reach_it(caplog):
    """The log line of an exposed endpoint (no socket is opened on 0.0.0.0 here: the
    options are validated and the sink's announcement is called with that endpoint)."""
    from edgedepth.plugins.topic_sink import TopicOptions, announce

    options = validate(
        TopicOptions, {"endpoint": "tcp://0.0.0.0:5556", "expose_to_network": True}, "t"
    )
    with caplog.at_level(logging.INFO, logger="edgedepth"):
        announce(options, "tcp://0.0.0.0:5556")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "warning: topic: listening on tcp://0.0.0.0:5556: reachable from every network this "
        "machine is on (unencrypted, unauthenticated)"
    )


def listening_inodes() -> set[str]:
    """Inodes of this process's listening TCP sockets (Linux /proc)."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            ours.add(target[8:-1])
    listening = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A":  # LISTEN
                listening.add(fields[9])
    return ours & listening


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_zenoh_subscriber_listens_nowhere():
    """A zenoh peer listens on every interface unless told otherwise: the subscriber (and
    `topic echo`) must not."""
    before = listening_inodes()
    with TopicSubscriber(f"tcp/127.0.0.1:{free_port()}", transport="zenoh"):
        assert listening_inodes() == before


# --- TLS and user/password ------------------------------------------------------------------


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, Path]:
    """A test CA and a certificate it signs for 127.0.0.1 (the publisher's), made here."""
    pytest.importorskip("cryptography", reason="cryptography is not installed (edgedepth[dev])")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("edgedepth test CA"))
        .issuer_name(name("edgedepth test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName([address]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files["users"] = tmp_path / "users.txt"
    files["users"].write_text("viewer:s3cret-pass\n")
    files["password"] = tmp_path / "password.txt"
    files["password"].write_text("s3cret-pass\n")
    files["wrong"] = tmp_path / "wrong.txt"
    files["wrong"].write_text("guess\n")
    return files


def echo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "topic", "echo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@POSIX_SIGNALS
def test_tls_and_a_password_let_only_the_right_subscriber_in(tmp_path, write_config, certificates):
    port = free_port()
    endpoint = f"tls/127.0.0.1:{port}"
    sink = {
        "type": "topic", "transport": "zenoh", "endpoint": endpoint,
        "tls": {"certificate": str(certificates["cert"]), "private_key": str(certificates["key"]),
                "root_ca": str(certificates["ca"])},
        "auth": {"users_file": str(certificates["users"])},
    }  # fmt: skip
    # A live stream of 10 s: the subscribers come and go while it runs.
    source = {"type": "synthetic", "frames": 300, "width": 32, "height": 24, "live": True}
    config = write_config(synthetic_config(tmp_path, source=source, sinks=[sink]))
    run = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    zenoh_echo = ("--transport", "zenoh", "--count", "3", "--timeout", "6")
    ca = ("--tls-root-ca", str(certificates["ca"]))
    try:
        viewer = echo(endpoint, *zenoh_echo, *ca, "--user", "viewer",
                      "--password-file", str(certificates["password"]))  # fmt: skip
        no_ca = echo(endpoint, *zenoh_echo, "--user", "viewer",
                     "--password-file", str(certificates["password"]))  # fmt: skip
        no_password = echo(endpoint, *zenoh_echo, *ca)
        wrong_password = echo(endpoint, *zenoh_echo, *ca, "--user", "viewer",
                              "--password-file", str(certificates["wrong"]))  # fmt: skip
        plain_tcp = echo(f"tcp/127.0.0.1:{port}", *zenoh_echo)
        out, err = viewer.communicate(timeout=60)
        assert viewer.returncode == 0, err
        lines = out.splitlines()
        assert len(lines) == 3 and all("32x24" in line for line in lines), out
        for refused in (no_ca, no_password, wrong_password, plain_tcp):
            out, err = refused.communicate(timeout=60)
            assert refused.returncode == 1 and out == "", (out, err)
            assert "no message for 6 s (received 0" in err.strip().splitlines()[-1]
    finally:
        run.send_signal(signal.SIGINT)
        _, run_err = run.communicate(timeout=60)
    assert f"listening on {endpoint} (this machine only)" in run_err
