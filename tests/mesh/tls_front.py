"""The providers' and the identity provider's TLS, as the mesh's egress meets them: one
port on 127.0.0.1 that answers each host name with a certificate for that name (chosen by
SNI, signed by a test CA made with openssl) and relays the decrypted bytes to the plain
process behind that name. A handshake without SNI, or for a name it does not serve, fails,
so a cluster that sends the wrong SNI or skips TLS cannot reach anything."""

import select
import socket
import ssl
import subprocess
import threading
from pathlib import Path


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(dir_: Path, names):
    """A test CA and, per host name, a leaf certificate with that name as its only SAN.
    Returns (ca.pem, {name: (cert, key)})."""
    dir_.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=chokepoint mesh test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
             cwd=dir_)
    leaves = {}
    for name in names:
        ext = dir_ / f"{name}.ext"
        ext.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=dir_)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext.name, "-out", f"{name}.pem", cwd=dir_)
        leaves[name] = (dir_ / f"{name}.pem", dir_ / f"{name}.key")
    return dir_ / "ca.pem", leaves


class TlsFront:
    """Listens on 127.0.0.1:<port>; `backends` maps a host name to the plain port behind it.
    `handshakes` counts the accepted handshakes per SNI name (what the checks read)."""

    def __init__(self, leaves, backends):
        self.backends = backends
        self.handshakes = {name: 0 for name in backends}
        self.refused = []  # (sni, reason) of failed handshakes
        self._lock = threading.Lock()
        self._contexts = {}
        for name, (cert, key) in leaves.items():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self._contexts[name] = ctx
        self._names = {id(ctx): name for name, ctx in self._contexts.items()}
        self._default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._default.sni_callback = self._pick
        # Needs a certificate of its own to start a handshake; any one, the callback swaps.
        first = next(iter(leaves.values()))
        self._default.load_cert_chain(*first)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _pick(self, sslobj, name, _ctx):
        ctx = self._contexts.get(name)
        if ctx is None:
            with self._lock:
                self.refused.append((name, "no certificate for this name"))
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sslobj.context = ctx
        return None

    def _accept(self):
        while not self._stopped:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            tls = self._default.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self._lock:
                self.refused.append((None, str(e)))
            conn.close()
            return
        # The callback put the name's own context on the socket (server_hostname is the
        # client side's); none when the client sent no SNI.
        name = self._names.get(id(tls.context))
        if name not in self.backends:
            with self._lock:
                self.refused.append((name, "no SNI"))
            tls.close()
            return
        with self._lock:
            self.handshakes[name] += 1
        try:
            plain = socket.create_connection(("127.0.0.1", self.backends[name]))
        except OSError:
            tls.close()
            return
        _relay(tls, plain)

    def stop(self):
        self._stopped = True
        self._sock.close()


def _relay(tls, plain):
    """Copies each way until either side closes, each chunk as it comes. One thread per
    connection: an SSL socket must not be read and written from two threads at once."""
    try:
        while True:
            ready = [tls] if tls.pending() else select.select([tls, plain], [], [])[0]
            if tls in ready:
                data = tls.recv(65536)
                if not data:
                    break
                plain.sendall(data)
            if plain in ready:
                data = plain.recv(65536)
                if not data:
                    break
                tls.sendall(data)
    except OSError:
        pass
    for s in (tls, plain):
        try:
            s.close()
        except OSError:
            pass
