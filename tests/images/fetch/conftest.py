"""Real servers on loopback for the fetch tests: HTTP(S), FTP (pyftpdlib) and SFTP (paramiko).

Nothing here listens on, or connects to, an address outside 127.0.0.0/8 and ::1.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paramiko
import pytest

# The import pipeline's storage and disk-image fixtures, for the end-to-end URL import tests.
from tests.images.imports.conftest import disks, standalone  # noqa: F401


@pytest.fixture
def fetch_settings(settings):
    """Loopback allowed for the test's servers, any port, no waiting between tries."""
    settings.IMPORT_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.IMPORT_ALLOWED_PORTS = ["*"]
    settings.IMPORT_RETRY_DELAY = 0
    settings.IMPORT_CONNECT_TIMEOUT = 5
    settings.IMPORT_STALL_TIMEOUT = 20
    settings.IMPORT_FETCH_RETRIES = 3
    return settings


@pytest.fixture
def payload():
    """3 MiB and a bit of random bytes: more than one block, not a multiple of it."""
    return os.urandom(3 * 1024 * 1024 + 12345)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class MemorySink:
    """A resettable sink that keeps what it receives."""

    def __init__(self):
        self.buffer = bytearray()
        self.resets = 0

    def write(self, data):
        self.buffer += data

    def reset(self):
        self.resets += 1
        self.buffer.clear()


# HTTP ------------------------------------------------------------------------------------------------

_RANGE = re.compile(r"^bytes=(\d+)-$")


class FileRoute:
    """Serves `data`; can honour Range or not, drop the connection or stall after some bytes, lie about
    the length, or send without Content-Length."""

    def __init__(
        self,
        data,
        *,
        ranges=True,
        drop_at=None,
        drops=1,
        drop_after=None,
        stall_at=None,
        stalls=1,
        length=True,
        pace=None,
    ):
        self.data = data
        self.pace = pace  # (piece bytes, seconds between pieces): a slow server
        self.drop_after = drop_after
        self.ranges = ranges
        self.drop_at = drop_at
        self.drops = drops
        self.stall_at = stall_at
        self.stalls = stalls
        self.length = length
        self.release = threading.Event()
        self.on_stall = None  # called in the server's thread when the stall begins

    def __call__(self, handler):
        start = 0
        match = _RANGE.match(handler.headers.get("Range", ""))
        if self.ranges and match and int(match.group(1)) < len(self.data):
            start = int(match.group(1))
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(self.data) - 1}/{len(self.data)}")
        else:
            handler.send_response(200)
        if self.length:
            handler.send_header("Content-Length", str(len(self.data) - start))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.send_header("ETag", '"v1"')
        handler.send_header("Accept-Ranges", "bytes" if self.ranges else "none")
        handler.end_headers()
        end = len(self.data)
        cut = stall = None
        if self.drop_at is not None and self.drops > 0 and start < self.drop_at:
            self.drops -= 1
            end = cut = self.drop_at
        elif self.drop_after is not None and self.drops > 0:
            self.drops -= 1
            end = cut = min(len(self.data), start + self.drop_after)
        elif self.stall_at is not None and self.stalls > 0 and start < self.stall_at:
            self.stalls -= 1
            end = stall = self.stall_at
        try:
            if self.pace:
                piece, pause = self.pace
                for offset in range(start, end, piece):
                    handler.wfile.write(self.data[offset : min(end, offset + piece)])
                    handler.wfile.flush()
                    time.sleep(pause)
            else:
                handler.wfile.write(self.data[start:end])
                handler.wfile.flush()
            if stall is not None:
                if self.on_stall is not None:
                    self.on_stall()
                self.release.wait(30)
                handler.wfile.write(self.data[end:])
            if cut is not None:
                handler.connection.shutdown(socket.SHUT_RDWR)
                handler.close_connection = True
        except OSError:
            handler.close_connection = True


class RequireBasicAuth(FileRoute):
    """Serves the file only to carol:s3cr:et (HTTP basic auth)."""

    def __call__(self, handler):
        if handler.headers.get("Authorization") != "Basic " + base64.b64encode(b"carol:s3cr:et").decode():
            handler.send_response(401)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        super().__call__(handler)


class Redirect:
    def __init__(self, location, status=302):
        self.location = location
        self.status = status

    def __call__(self, handler):
        handler.send_response(self.status)
        handler.send_header("Location", self.location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append({"path": self.path, "headers": dict(self.headers)})
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route(self)


class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host="127.0.0.1", tls_context=None):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), _Handler)
        self.routes = {}
        self.requests = []
        self.scheme = "https" if tls_context else "http"
        if tls_context:
            self.socket = tls_context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def handle_error(self, request, client_address):
        pass  # clients that hang up are the point of several tests

    def url(self, path, host=None):
        host = host or self.server_address[0]
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.server_address[1]}{path}"

    def stop(self):
        for route in self.routes.values():
            if isinstance(route, FileRoute):
                route.release.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def http_server():
    servers = []

    def start(host="127.0.0.1", tls_context=None):
        server = LoopbackHTTPServer(host, tls_context)
        server.thread.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class AcceptRecorder:
    """A listening socket that only counts the connections it accepts."""

    def __init__(self, host):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def accept_recorder():
    recorders = []

    def start(host="127.0.0.1"):
        recorder = AcceptRecorder(host)
        recorders.append(recorder)
        return recorder

    yield start
    for recorder in recorders:
        recorder.close()


@pytest.fixture
def tls_files(tmp_path):
    """A self-signed certificate for localhost and 127.0.0.1, made for the test."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(http_server, tls_files):
    """An https server on 127.0.0.1 that records the server name (SNI) each client asked for."""
    cert_path, key_path = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server_names = []
    context.sni_callback = lambda sslsock, name, ctx: server_names.append(name)
    server = http_server(tls_context=context)
    server.server_names = server_names
    return server


# FTP -------------------------------------------------------------------------------------------------

FTP_USER, FTP_PASSWORD = "alice", "p@ss:w/rd s3cret"


@pytest.fixture
def ftp_server(tmp_path):
    """pyftpdlib on 127.0.0.1 serving tmp_path/ftp to anonymous and to alice (with a password).

    `options` lets a test make the server misbehave: drop the first RETR halfway, refuse REST, or
    announce a SIZE smaller than the file.
    """
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.filesystems import AbstractedFS
    from pyftpdlib.handlers import DTPHandler, FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    root = tmp_path / "ftp"
    root.mkdir()
    options = {"drop_first_at": None, "no_rest": False, "size_delta": 0, "retr": 0}

    class FS(AbstractedFS):
        def open(self, filename, mode):
            options["retr"] += 1
            if options["drop_first_at"] is not None and options["retr"] == 1:
                half = root / ".half"
                half.write_bytes(open(filename, "rb").read()[: options["drop_first_at"]])
                return open(half, mode)
            return super().open(filename, mode)

    class Handler(FTPHandler):
        abstracted_fs = FS
        dtp_handler = type("DTP", (DTPHandler,), {"use_sendfile": lambda self: False})
        timeout = 30
        auth_failed_timeout = 0.1

        def ftp_REST(self, line):
            if options["no_rest"]:
                self.respond("502 Command not implemented.")
                return
            return super().ftp_REST(line)

        def ftp_SIZE(self, path):
            if options["size_delta"]:
                self.respond(f"213 {os.path.getsize(path) + options['size_delta']}")
                return
            return super().ftp_SIZE(path)

    authorizer = DummyAuthorizer()
    authorizer.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elr")
    authorizer.add_anonymous(str(root))
    Handler.authorizer = authorizer
    server = ThreadedFTPServer(("127.0.0.1", 0), Handler)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    server.root = root
    server.port = server.address[1]
    server.options = options
    yield server
    stop.set()
    thread.join(5)
    server.close_all()


# SFTP ------------------------------------------------------------------------------------------------

SFTP_USER, SFTP_PASSWORD = "bob", "correct:horse@battery/staple"


class _StubSFTPHandle(paramiko.SFTPHandle):
    def read(self, offset, length):
        state = self.sftp_server.state
        if not getattr(self, "started", False):
            self.started = True
            state.first_reads.append(offset)
        if state.drop_at is not None and state.drops > 0 and offset + length > state.drop_at:
            state.drops -= 1
            self.sftp_server.transport.close()
            return paramiko.SFTP_CONNECTION_LOST
        return super().read(offset, length)


class _StubSFTP(paramiko.SFTPServerInterface):
    def __init__(self, server, *args, **kwargs):
        super().__init__(server, *args, **kwargs)
        self.server = server

    def _real(self, path):
        real = os.path.realpath(os.path.join(self.server.root, path.lstrip("/")))
        if not real.startswith(str(self.server.root)):
            raise PermissionError
        return real

    def stat(self, path):
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(self._real(path)))
        except FileNotFoundError:
            return paramiko.SFTP_NO_SUCH_FILE
        except PermissionError:
            return paramiko.SFTP_PERMISSION_DENIED

    lstat = stat

    def canonicalize(self, path):
        return "/" + path.lstrip("/")

    def open(self, path, flags, attr):
        try:
            handle = _StubSFTPHandle(flags)
            handle.readfile = open(self._real(path), "rb")
            handle.filename = path
            handle.sftp_server = self.server
            return handle
        except FileNotFoundError:
            return paramiko.SFTP_NO_SUCH_FILE


class _SSHServer(paramiko.ServerInterface):
    def __init__(self, state, transport):
        self.state = state
        self.root = state.root
        self.transport = transport

    def check_channel_request(self, kind, chanid):
        return (
            paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        )

    def get_allowed_auths(self, username):
        return "password,publickey"

    def check_auth_password(self, username, password):
        self.state.logins.append(("password", username))
        ok = username == SFTP_USER and password == SFTP_PASSWORD
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username, key):
        ok = username == SFTP_USER and key == self.state.client_key
        if ok:
            self.state.logins.append(("publickey", username))
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED


class SFTPServerState:
    def __init__(self, root):
        self.root = root
        self.host_key = paramiko.ECDSAKey.generate()
        self.client_key = paramiko.ECDSAKey.generate()
        self.drop_at = None
        self.drops = 0
        self.logins = []
        self.first_reads = []  # the offset each opened file was first read at
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.transports = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            server = _SSHServer(self, transport)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _StubSFTP)
            self.transports.append(transport)
            try:
                transport.start_server(server=server)
            except (paramiko.SSHException, EOFError, OSError):
                continue

    def known_hosts_line(self):
        return f"[127.0.0.1]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}\n"

    def close(self):
        self._stop.set()
        self.thread.join(2)
        for transport in self.transports:
            transport.close()
        self.sock.close()


@pytest.fixture
def sftp_server(tmp_path):
    root = tmp_path / "sftp"
    root.mkdir()
    state = SFTPServerState(root.resolve())
    yield state
    state.close()


@pytest.fixture
def sftp_client_key_file(sftp_server, tmp_path):
    path = tmp_path / "id_ecdsa"
    buffer = io.StringIO()
    sftp_server.client_key.write_private_key(buffer)
    path.write_text(buffer.getvalue())
    path.chmod(0o600)
    return path
