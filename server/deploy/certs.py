"""The federation's CA and the SuperLink's TLS certificate (EC P-384, made with `cryptography`)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedprice.errors import ConfigError
from privacy.keys import atomic_write, write_secret
from server.deploy.layout import CentralLayout

log = logging.getLogger(__name__)
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650


@dataclass(frozen=True)
class CertificateInfo:
    """What a certificate says, for the operator (no key material)."""

    path: str
    subject: str
    issuer: str
    hosts: list[str]
    not_after: str
    sha256: str


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedprice federation"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        if not host or any(c in host for c in " /:@"):
            raise ConfigError(f"'{host}' is neither an IP address nor a DNS name for the SuperLink certificate") from None
        return x509.DNSName(host)


def _create_ca(layout: CentralLayout) -> None:
    key = _key()
    now = datetime.now(UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder().subject_name(_name("fedprice federation CA")).issuer_name(_name("fedprice federation CA"))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA384())
    )
    write_secret(layout.ca_key, _pem_key(key))
    atomic_write(layout.ca_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    log.info("created the federation CA %s", layout.ca_cert)


def _load_ca(layout: CentralLayout) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not layout.ca_cert.exists():
        raise ConfigError(f"{layout.ca_key} exists but {layout.ca_cert} is missing: restore it from backup")
    cert = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ConfigError(f"{layout.ca_key} is not the private key of {layout.ca_cert}")
    return cert, key


def issue_superlink_certificate(layout: CentralLayout, hosts: Iterable[str], *, days: int = 397) -> CertificateInfo:
    """Issue the SuperLink's server certificate, signed by the CA, valid for `hosts` plus the loopback names."""
    ca_cert, ca_key = _load_ca(layout)
    names = list(dict.fromkeys([*DEFAULT_HOSTS, *(h.strip() for h in hosts if h.strip())]))
    common_name = next((h for h in names if h not in DEFAULT_HOSTS), "localhost")
    key = _key()
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(common_name))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    atomic_write(layout.superlink_key, _pem_key(key), mode=0o600)
    atomic_write(layout.superlink_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    log.info("issued the SuperLink certificate %s for %s", layout.superlink_cert, ", ".join(names))
    return describe(layout.superlink_cert)


def init_ca(layout: CentralLayout, hosts: Iterable[str] = (), *, days: int = 397) -> tuple[CertificateInfo, CertificateInfo]:
    """Create the CA once (reused afterwards), then (re)issue the SuperLink certificate for `hosts`."""
    if not layout.ca_key.exists():
        _create_ca(layout)
    server = issue_superlink_certificate(layout, hosts, days=days)
    return describe(layout.ca_cert), server


def describe(path: Path) -> CertificateInfo:
    """Subject, issuer, host names, expiry and fingerprint of a PEM certificate."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable PEM certificate ({exc})") from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        hosts = [str(v) for v in san.get_values_for_type(x509.DNSName)] + \
                [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        hosts = []
    return CertificateInfo(path=str(path), subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                           hosts=hosts, not_after=cert.not_valid_after_utc.isoformat(timespec="seconds"),
                           sha256=cert.fingerprint(hashes.SHA256()).hex())


def check_superlink_certificate(layout: CentralLayout, dial_host: str | None = None) -> CertificateInfo:
    """Refuse to start with a missing, expired, foreign or wrong-host certificate; name the file and the fix."""
    for path in (layout.ca_cert, layout.superlink_cert, layout.superlink_key):
        if not path.exists():
            raise ConfigError(f"{path} is missing: run `fedprice federation init-ca --central-dir {layout.root}` first")
    ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(layout.superlink_cert.read_bytes())
    ca_key = ca.public_key()
    if not isinstance(ca_key, ec.EllipticCurvePublicKey):
        raise ConfigError(f"{layout.ca_cert}: expected an EC CA key")
    try:
        ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise ConfigError(f"{layout.superlink_cert} was not issued by {layout.ca_cert}: "
                          "re-run `fedprice federation init-ca`") from None
    if cert.not_valid_after_utc <= datetime.now(UTC):
        raise ConfigError(f"{layout.superlink_cert} expired on {cert.not_valid_after_utc:%Y-%m-%d}: "
                          "re-run `fedprice federation init-ca`")
    info = describe(layout.superlink_cert)
    if dial_host and dial_host not in ("0.0.0.0", "::") and dial_host.strip("[]") not in info.hosts:
        raise ConfigError(f"{layout.superlink_cert} is not valid for '{dial_host}' (it covers {', '.join(info.hosts)}): "
                          f"re-run `fedprice federation init-ca --host {dial_host}`")
    return info
