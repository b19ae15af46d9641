"""The WebSocket Origin check against a real daphne: scheme, host and port, IPv6, proxies, TLS.

Each case is one raw upgrade request (asyncio streams) with the ``Host`` and ``Origin`` a
browser would send; daphne answers ``101`` when the socket is accepted and ``403`` when the
application closes it before accept (4403). The rule is docs/protocol.md §4.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.live.harness import DAPHNE, ROOT, SOCKETIO_PATH, DaphneServer, free_port, server_env

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

TARGET = f"{SOCKETIO_PATH}/?EIO=4&transport=websocket"


def upgrade(host: str, *extra: str) -> bytes:
    lines = [
        f"GET {TARGET} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def handshake(
    server: DaphneServer, host: str, origin: str | None, *extra: str, tls: bool = False
) -> int:
    """The status daphne answers a WebSocket upgrade with (101 accepted, 403 refused)."""
    context = ssl._create_unverified_context() if tls else None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
    try:
        headers = ([f"Origin: {origin}"] if origin is not None else []) + list(extra)
        writer.write(upgrade(host, *headers))
        await writer.drain()
        async with asyncio.timeout(5):
            line = await reader.readline()
        return int(line.split()[1])
    finally:
        writer.close()


async def test_origin_is_compared_by_scheme_host_and_port(server):
    """Finding: ``http://localhost:9999``, ``https://127.0.0.1`` and ``http://evil.com@127.0.0.1``
    were accepted against 127.0.0.1:<port>, and ``http://[::1]:<port>`` refused although
    ``[::1]`` is in ALLOWED_HOSTS."""
    port = server.port
    here = f"127.0.0.1:{port}"
    cases = [
        (here, None, 101),  # not a browser
        (here, f"http://{here}", 101),
        (f"localhost:{port}", f"http://localhost:{port}", 101),
        (f"[::1]:{port}", f"http://[::1]:{port}", 101),
        (f"LOCALHOST:{port}", f"http://localhost:{port}", 101),
        (here, "http://localhost:9999", 403),
        (here, f"http://localhost:{port}", 403),  # another host than the one asked for
        (here, "https://127.0.0.1", 403),
        (here, f"https://{here}", 403),  # a plain connection: the page was not https
        (here, "http://evil.com@127.0.0.1", 403),
        (here, f"http://evil.com@{here}", 403),
        (here, f"http://{here}/", 403),
        (here, "null", 403),
        (f"evil.example:{port}", f"http://evil.example:{port}", 403),  # Host not allowed
        (f"[::1]:{port}", "http://[::1]:8080", 403),
    ]
    answers = [(host, origin, await handshake(server, host, origin)) for host, origin, _ in cases]
    assert answers == cases


async def test_forwarded_proto_counts_only_from_a_trusted_proxy(servers):
    """Behind a TLS-terminating proxy the browser's origin is https while daphne sees plain
    TCP: ``X-Forwarded-Proto: https`` says so — believed from ``TRUSTED_PROXIES`` only."""
    direct = servers("direct")
    behind_proxy = servers("proxied", TRUSTED_PROXIES="127.0.0.1")
    forwarded = "X-Forwarded-Proto: https"
    assert await handshake(behind_proxy, "localhost", "https://localhost", forwarded) == 101
    assert await handshake(behind_proxy, "localhost", "http://localhost", forwarded) == 403
    assert await handshake(behind_proxy, "localhost", "http://localhost") == 101
    assert await handshake(direct, "localhost", "https://localhost", forwarded) == 403
    assert await handshake(direct, "localhost", "http://localhost", forwarded) == 101


# --- daphne serving TLS itself -------------------------------------------------------------------


class TLSDaphne(DaphneServer):
    """daphne with a TLS endpoint (``-e ssl:…``) and a self-signed certificate."""

    def __init__(self, log_dir, key_path, cert_path) -> None:
        super().__init__(log_dir, "daphne-tls")
        self.key_path, self.cert_path = key_path, cert_path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        self.port = free_port()
        endpoint = (
            f"ssl:{self.port}:interface=127.0.0.1"
            f":privateKey={self.key_path}:certKey={self.cert_path}"
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(DAPHNE), "-e", endpoint, "config.asgi:application"],
                cwd=ROOT,
                env=server_env(None, {}),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def request(self, method, path, token=None, body=None, timeout=10.0):
        """Only what ``wait_ready`` needs: the status of a GET over TLS (certificate unchecked)."""
        import http.client

        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, timeout=timeout, context=ssl._create_unverified_context()
        )
        try:
            connection.request(method, path)
            return connection.getresponse().status, None
        finally:
            connection.close()


@pytest.fixture
def tls_server(servers, tmp_path) -> TLSDaphne:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    server = TLSDaphne(tmp_path, key_path, cert_path)
    servers.started.append(server)
    return server.start()


async def test_daphne_serving_tls_accepts_its_https_origin(tls_server):
    """daphne's WebSocket scope does not say TLS (no ``scheme``); Chorus sets it, so the
    page's own https origin is accepted and its http twin refused."""
    here = f"127.0.0.1:{tls_server.port}"
    assert await handshake(tls_server, here, f"https://{here}", tls=True) == 101
    assert await handshake(tls_server, here, f"http://{here}", tls=True) == 403
