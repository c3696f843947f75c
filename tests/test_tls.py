"""The local CA and the daemon's certificate (``orchestrator/tls.py``), in process: what
they name, who signed them, the modes of the keys, reuse, and every reason to renew."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestrator.home import Home
from orchestrator.tls import TlsFiles, ensure_certificates, loopback_names, write_ca_bundle

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.create()
    return h


def cert_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def contents(files: TlsFiles) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (files.ca, files.ca_key, files.cert, files.key)}


def test_the_certificate_names_the_loopback_names_and_is_signed_by_the_ca(home: Home) -> None:
    files = ensure_certificates(home, NOW)
    ca, leaf = cert_of(files.ca), cert_of(files.cert)
    assert loopback_names(leaf) == {"127.0.0.1", "localhost"}
    leaf.verify_directly_issued_by(ca)  # raises if the CA did not sign it
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.not_valid_before_utc <= NOW < leaf.not_valid_after_utc
    assert files.ca == home.ca_file and files.ca.parent == home.tls


def test_openssl_accepts_the_chain_for_both_names(home: Home) -> None:
    """What every client does: load orch's CA, check the certificate and its host name."""
    files = ensure_certificates(home)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(files.cert, files.key)
    client = ssl.create_default_context(cafile=str(files.ca))
    for name in ("127.0.0.1", "localhost"):
        client_side, server_side = ssl.MemoryBIO(), ssl.MemoryBIO()
        c = client.wrap_bio(client_side, server_side, server_hostname=name)
        s = server.wrap_bio(server_side, client_side, server_side=True)
        for _ in range(10):  # drive the handshake by hand, both ends in memory
            for end in (c, s):
                with contextlib.suppress(ssl.SSLWantReadError):
                    end.do_handshake()
        peer = c.getpeercert()
        assert peer is not None, f"no handshake for {name}"
        assert peer["subjectAltName"] == (
            ("IP Address", "127.0.0.1"),
            ("DNS", "localhost"),
        )


def test_private_keys_are_private(home: Home) -> None:
    files = ensure_certificates(home, NOW)
    assert stat.S_IMODE(home.tls.stat().st_mode) == 0o700
    for key in (files.ca_key, files.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    for public in (files.ca, files.cert):
        assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert not [p for p in home.tls.iterdir() if p.name.endswith(".tmp")]


def test_certificates_are_made_once_and_reused(home: Home) -> None:
    first = contents(ensure_certificates(home, NOW))
    again = contents(ensure_certificates(home, NOW + dt.timedelta(days=30)))
    assert again == first


def test_an_expiring_certificate_is_renewed_under_the_same_ca(home: Home) -> None:
    first = contents(files := ensure_certificates(home, NOW))
    later = NOW + dt.timedelta(days=360)  # within the week before its end
    renewed = contents(ensure_certificates(home, later))
    assert renewed["ca.pem"] == first["ca.pem"] and renewed["ca-key.pem"] == first["ca-key.pem"]
    assert renewed["cert.pem"] != first["cert.pem"] and renewed["key.pem"] != first["key.pem"]
    assert cert_of(files.cert).not_valid_after_utc > later + dt.timedelta(days=300)


def test_an_expired_ca_is_replaced_with_a_new_certificate(home: Home) -> None:
    first = contents(files := ensure_certificates(home, NOW))
    later = NOW + dt.timedelta(days=3650)
    renewed = contents(ensure_certificates(home, later))
    assert all(renewed[name] != first[name] for name in first)
    cert_of(files.cert).verify_directly_issued_by(cert_of(files.ca))


def test_a_certificate_from_another_ca_is_replaced(home: Home, tmp_path: Path) -> None:
    files = ensure_certificates(home, NOW)
    other = Home(tmp_path / "other")
    other.create()
    stranger = ensure_certificates(other, NOW)
    files.cert.write_bytes(stranger.cert.read_bytes())
    files.key.write_bytes(stranger.key.read_bytes())
    ensure_certificates(home, NOW)
    cert_of(files.cert).verify_directly_issued_by(cert_of(files.ca))


def test_a_certificate_with_other_names_is_replaced(home: Home) -> None:
    files = ensure_certificates(home, NOW)
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    only_ip = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))])
    narrow = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(cert_of(files.ca).subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=100))
        .add_extension(only_ip, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files.cert.write_bytes(narrow.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ensure_certificates(home, NOW)
    assert loopback_names(cert_of(files.cert)) == {"127.0.0.1", "localhost"}


@pytest.mark.parametrize("damage", ["missing key", "foreign key", "garbage certificate"])
def test_a_broken_pair_is_replaced(home: Home, damage: str) -> None:
    files = ensure_certificates(home, NOW)
    if damage == "missing key":
        files.key.unlink()
    elif damage == "foreign key":
        files.key.write_bytes(files.ca_key.read_bytes())
    else:
        files.cert.write_text("not a certificate")
    ensure_certificates(home, NOW)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(files.cert, files.key)  # raises unless they belong together
    cert_of(files.cert).verify_directly_issued_by(cert_of(files.ca))


def test_the_bundle_holds_the_systems_cas_and_orchs(home: Home) -> None:
    files = ensure_certificates(home, NOW)
    bundle = write_ca_bundle(home).read_text()
    assert bundle.count("BEGIN CERTIFICATE") > 10  # the system's (or certifi's) CAs
    assert files.ca.read_text().strip() in bundle
    assert ssl.create_default_context(cafile=str(home.ca_bundle)).get_ca_certs()
