"""Test certificates made with ``cryptography``: a CA, a server certificate for 127.0.0.1 /
localhost signed by it, and a client certificate signed by it (for mTLS), plus a token file."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Material:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    token_file: Path
    token: str
    sender_token_file: Path
    """Just the token: what a sender (the Collector's bearertokenauth) reads."""

    def gateway_args(self, *, client_ca: bool = False) -> list[str]:
        args = ["--auth-token-file", str(self.token_file)]
        args += ["--tls-cert", str(self.cert), "--tls-key", str(self.key)]
        if client_ca:
            args += ["--tls-client-ca", str(self.ca)]
        return args

    @property
    def bearer(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def collector_env(self) -> dict[str, str]:
        """agent.yaml's variables for a gateway with this material."""
        return {
            "OTEL_GEMINI_GATEWAY_TOKEN_FILE": str(self.sender_token_file),
            "OTEL_GEMINI_GATEWAY_CA_FILE": str(self.ca),
        }

    def client_context(self, *, with_cert: bool = False) -> ssl.SSLContext:
        """A client TLS context trusting the test CA (presenting the client certificate)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if with_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make(directory: Path) -> Material:
    """Writes the CA, server and client certificates and a token file into ``directory``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("otel-gemini test CA"))
        .issuer_name(_name("otel-gemini test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common: str, usage: x509.ObjectIdentifier, server: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        pem_key = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), pem_key

    server_cert, server_key = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, True)
    client_cert, client_key = leaf("collector", ExtendedKeyUsageOID.CLIENT_AUTH, False)
    paths = {
        "ca": directory / "ca.pem",
        "cert": directory / "server.pem",
        "key": directory / "server-key.pem",
        "client_cert": directory / "client.pem",
        "client_key": directory / "client-key.pem",
    }
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server_cert)
    paths["key"].write_bytes(server_key)
    paths["client_cert"].write_bytes(client_cert)
    paths["client_key"].write_bytes(client_key)
    token = secrets.token_urlsafe(24)
    token_file = directory / "tokens"
    token_file.write_text(f"# gateway tokens\n\n{token}\n")
    sender_token_file = directory / "sender-token"
    sender_token_file.write_text(token)
    return Material(
        token_file=token_file, token=token, sender_token_file=sender_token_file, **paths
    )
