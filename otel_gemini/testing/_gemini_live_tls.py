"""A self-signed certificate for the fake Gemini, made at runtime (the Live API needs ``wss://``).

google-genai always opens the Live API WebSocket over TLS, so a fake Live endpoint needs a
certificate the client can be told to trust. It is generated fresh (EC P-256, valid for a day,
``127.0.0.1``, ``::1`` and ``localhost``) and written to a private temporary directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class SelfSignedCertificate:
    """A certificate and key for loopback hosts, in files (uvicorn and ``ssl`` read files)."""

    def __init__(self, common_name: str = "otel-gemini fake server") -> None:
        self._directory = Path(tempfile.mkdtemp(prefix="otel-gemini-tls-"))
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
            # A CA certificate, so clients accept it as its own trust anchor.
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
        self.certfile = str(self._directory / "cert.pem")
        self.keyfile = str(self._directory / "key.pem")
        Path(self.certfile).write_bytes(self.certificate_pem)
        key_file = Path(self.keyfile)
        key_file.touch(mode=0o600)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self._bundle: str | None = None

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this certificate (and verifies the host name)."""
        return ssl.create_default_context(cafile=self.certfile)

    def ca_bundle(self) -> str:
        """A CA bundle file: the system's usual roots (``certifi``) plus this certificate.

        For ``SSL_CERT_FILE``, which google-genai 1.x's Live client reads (it takes no SSL
        context); the usual roots keep other HTTPS in the process working meanwhile.
        """
        if self._bundle is None:
            import certifi

            bundle = self._directory / "bundle.pem"
            bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + self.certificate_pem)
            self._bundle = str(bundle)
        return self._bundle

    def remove(self) -> None:
        """Deletes the files (the certificate is useless afterwards)."""
        shutil.rmtree(self._directory, ignore_errors=True)
