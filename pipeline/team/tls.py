"""TLS for the team server: beyond this machine only over HTTPS, so passwords never cross a network
in clear; a given certificate and key, or a self-signed pair generated once."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from pipeline import PipelineError
from pipeline.team.private_files import write_private


def self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate and key for this machine's names and `host`, generated once into
    `folder`/tls (the key 0600); clients trust it with MLFLOW_TRACKING_SERVER_CERT_PATH."""
    import datetime  # (and cryptography: only with --self-signed)

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert, key = folder / "tls" / "server.crt", folder / "tls" / "server.key"
    if cert.exists() and key.exists():
        return cert, key
    cert.parent.mkdir(parents=True, exist_ok=True)
    names, addresses = {socket.gethostname(), socket.getfqdn(), "localhost"}, {"127.0.0.1", "::1"}
    if not is_ip(host):
        names.add(host)
    elif not ipaddress.ip_address(host).is_unspecified:
        addresses.add(host)
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, socket.getfqdn())])
    now = datetime.datetime.now(datetime.UTC)
    alternatives = [*map(x509.DNSName, sorted(names)), *(x509.IPAddress(ipaddress.ip_address(a)) for a in addresses)]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(private, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = private.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private(key, key_pem.decode())
    cert.write_bytes(certificate.public_bytes(pem))
    return cert, key


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback if is_ip(host) else host == "localhost"


def tls_files(folder: Path, host: str, cert: Path | None, key: Path | None, generate: bool) -> tuple[Path, Path] | None:
    """The certificate and key to serve with, or None on a loopback address without them; beyond
    this machine without TLS, refused."""
    if generate:
        return self_signed(folder, host)
    if bool(cert) != bool(key):
        raise PipelineError("--cert and --key go together: the certificate and its private key")
    if cert:
        for path in (cert, key):
            if not path.is_file():
                raise PipelineError(f"{path}: no such file")
        return cert.resolve(), key.resolve()
    if not is_loopback(host):
        raise PipelineError(
            f"--host {host} serves beyond this machine: that needs TLS, so that passwords never cross the "
            "network in clear (give --cert and --key, or --self-signed)"
        )
    return None
