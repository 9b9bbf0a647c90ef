"""Ledgerflow reaches Temporal over TLS with the `LEDGERFLOW_TEMPORAL_TLS*` settings.

The dev server speaks plain TCP only, so a TLS terminator in this process (a certificate
from a test CA, ALPN h2, bytes piped to the dev server) stands in for a TLS frontend: the
SDK's TLS stack really verifies the certificate against the CA it is given and the name it
is told, and refuses one it cannot verify.
"""

import asyncio
import datetime
import ipaddress
import json
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from ledgerflow.settings import Settings
from ledgerflow.temporal import TemporalAuth


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_ca_and_server_certificate(directory: Path) -> None:
    """ca.pem, and server.pem / server-key.pem for `temporal.test` and 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("ledgerflow test CA"))
        .issuer_name(_name("ledgerflow test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("temporal.test"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("temporal.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server.public_bytes(pem))
    (directory / "server-key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def tls_frontend(tmp_path: Path, temporal_address: str) -> AsyncIterator[tuple[str, Path]]:
    """host:port of a TLS endpoint in front of the session's Temporal, and the CA file."""
    _write_ca_and_server_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server-key.pem")
    context.set_alpn_protocols(["h2"])  # gRPC
    host, _, port = temporal_address.rpartition(":")

    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter):
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
        )

    server = await asyncio.start_server(forward, "127.0.0.1", 0, ssl=context)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield address, tmp_path / "ca.pem"
    server.close()


async def _register(shard_dsns: list[str], **settings: str) -> tuple[int, str]:
    """`ledgerflow temporal register-search-attributes` with these LEDGERFLOW_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env["LEDGERFLOW_SHARD_DSNS"] = json.dumps(shard_dsns)
    env |= {f"LEDGERFLOW_{k.upper()}": v for k, v in settings.items()}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ledgerflow",
        "temporal",
        "register-search-attributes",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_a_command_reaches_temporal_over_tls_with_the_given_ca(
    tls_frontend: tuple[str, Path], shard_dsns: list[str]
) -> None:
    """With the CA and the certificate's name, the command connects through TLS and does
    its work; the same endpoint without TLS, or with TLS but without the CA (the system's
    roots do not know the test CA), fails with a one-line error and exit code 2."""
    address, ca = tls_frontend
    code, output = await _register(
        shard_dsns,
        temporal_address=address,
        temporal_tls_ca_path=str(ca),
        temporal_tls_server_name="temporal.test",
    )
    assert code == 0, output
    assert "registered" in output

    for settings in ({}, {"temporal_tls": "true"}):
        code, output = await _register(shard_dsns, temporal_address=address, **settings)
        assert code == 2, output
        assert "unreachable" in output, output
        assert "Traceback" not in output


def test_the_tls_settings_become_the_client_s_tls_config(tmp_path: Path) -> None:
    """Plain TCP by default; an API key or a CA turns TLS on; a certificate needs its key."""
    assert TemporalAuth.from_settings(Settings()) == TemporalAuth(tls=False, api_key=None)
    cloud = TemporalAuth.from_settings(Settings(temporal_api_key="secret"))
    assert cloud == TemporalAuth(tls=True, api_key="secret")
    _write_ca_and_server_certificate(tmp_path)
    private = TemporalAuth.from_settings(
        Settings(
            temporal_tls_ca_path=tmp_path / "ca.pem",
            temporal_tls_cert_path=tmp_path / "server.pem",
            temporal_tls_key_path=tmp_path / "server-key.pem",
            temporal_tls_server_name="temporal.test",
        )
    )
    assert not isinstance(private.tls, bool)
    assert private.tls.server_root_ca_cert == (tmp_path / "ca.pem").read_bytes()
    assert private.tls.client_private_key == (tmp_path / "server-key.pem").read_bytes()
    assert private.tls.domain == "temporal.test"
    with pytest.raises(ValidationError, match="go together"):
        Settings(temporal_tls_cert_path=tmp_path / "server.pem")
    with pytest.raises(ValidationError):
        Settings(temporal_tls_ca_path=tmp_path / "missing.pem")
