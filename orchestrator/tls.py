"""The local CA and the certificate of a ``--tls`` daemon, kept in ``<home>/tls/``.

The official ``nextmv`` CLI only speaks ``https://``, so a daemon that should serve
it needs a certificate its clients can verify without any network: orch makes its
own certificate authority once, and signs with it a certificate for the names a
loopback daemon answers to (``127.0.0.1`` and ``localhost``). Clients trust the CA
(``ca.pem``), never the leaf, so renewing the leaf changes nothing for them.

Everything is made once and reused: ``ensure_certificates`` only writes what is
missing, expired (or about to be), signed by another CA, or no longer naming the
loopback names. Private keys are written 0600 in a 0700 folder, atomically, so a
daemon killed half-way never leaves a key another process could read, nor a
certificate without its key.

Only the daemon imports this module (``cryptography`` is too heavy for the CLI's
start-up); the paths clients read are in ``home.py``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orchestrator.home import Home

LOOPBACK_NAMES: tuple[str, ...] = ("127.0.0.1", "localhost")
"""What the certificate names: the daemon listens on 127.0.0.1 only."""
CA_DAYS = 3650
CERT_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=7)
"""A certificate this close to its end is renewed at start: a daemon runs for days."""
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/cert.pem",  # macOS, Arch
)

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    ca_key: Path
    cert: Path
    key: Path

    @classmethod
    def of(cls, home: Home) -> TlsFiles:
        tls = home.tls
        return cls(home.ca_file, tls / "ca-key.pem", tls / "cert.pem", tls / "key.pem")


def ensure_certificates(home: Home, now: dt.datetime | None = None) -> TlsFiles:
    """The CA and the daemon's certificate, made or renewed only when needed."""
    now = now or dt.datetime.now(dt.UTC)
    files = TlsFiles.of(home)
    home.tls.mkdir(mode=0o700, exist_ok=True)
    os.chmod(home.tls, 0o700)
    ca = _usable_ca(files, now)
    if ca is None:
        ca = _new_ca(now)
        _write_pair(files.ca, files.ca_key, *ca)
    if not _leaf_ok(files, ca[0], now):
        leaf = _new_leaf(ca, now)
        _write_pair(files.cert, files.key, *leaf)
    return files


def write_ca_bundle(home: Home) -> Path:
    """``ca-bundle.pem``: the system's CAs (certifi's when none is found) and orch's, for
    tools that take one bundle (``REQUESTS_CA_BUNDLE``): public sites keep working."""
    parts = [_system_bundle(), home.ca_file.read_bytes()]
    text = b"\n".join(p.rstrip(b"\n") + b"\n" for p in parts if p)
    _write_atomic(home.ca_bundle, text, 0o644)
    return home.ca_bundle


def loopback_names(cert: x509.Certificate) -> set[str]:
    """The names a certificate is valid for, as text (IP addresses and DNS names)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return ips | set(san.get_values_for_type(x509.DNSName))


def _usable_ca(files: TlsFiles, now: dt.datetime) -> tuple[x509.Certificate, Key] | None:
    pair = _load_pair(files.ca, files.ca_key)
    if pair is None or not _current(pair[0], now):
        return None
    return pair


def _leaf_ok(files: TlsFiles, ca: x509.Certificate, now: dt.datetime) -> bool:
    """The daemon's certificate is reusable: current, naming the loopback names, issued by
    this CA (a renewed CA means a new certificate), and with its own key beside it."""
    pair = _load_pair(files.cert, files.key)
    if pair is None:
        return False
    cert = pair[0]
    if not _current(cert, now) or loopback_names(cert) != set(LOOPBACK_NAMES):
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _load_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, Key] | None:
    """A certificate and its private key, or None when either is missing, unreadable,
    or they do not belong together."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _current(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and now + RENEW_BEFORE < cert.not_valid_after_utc


def _new_ca(now: dt.datetime) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orch local CA")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        _builder(name, name, key, now, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_leaf(ca: tuple[x509.Certificate, Key], now: dt.datetime) -> tuple[x509.Certificate, Key]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK_NAMES[0])])
    names = [
        x509.IPAddress(ipaddress.IPv4Address(LOOPBACK_NAMES[0])),
        x509.DNSName(LOOPBACK_NAMES[1]),
    ]
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(subject, ca_cert.subject, key, now, CERT_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _builder(
    subject: x509.Name, issuer: x509.Name, key: Key, now: dt.datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # a clock a little behind
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _write_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key: Key) -> None:
    """Key first, certificate second: a certificate on disk always has its key."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(key_path, key_pem, 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Created with its final mode (a key is never readable by others, even briefly)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)  # the umask may have removed bits of a public file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _system_bundle() -> bytes:
    """The machine's trusted CAs as PEM; certifi's bundle if the machine has none."""
    candidates = [ssl.get_default_verify_paths().cafile, *SYSTEM_BUNDLES]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            with contextlib.suppress(OSError):
                return Path(candidate).read_bytes()
    try:
        import certifi  # comes with requests, which the SDK uses
    except ImportError:
        return b""
    return Path(certifi.where()).read_bytes()
