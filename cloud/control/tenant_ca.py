"""Per-tenant certificate authorities: the one module that touches `cryptography`.

Every tenant has its own CA (EC P-256, self-signed). It signs a device's CSR into a client
certificate whose subject CN is the device's broker identity, `<tenant_id>/d/<device_id>`:
the path of the device's subtree below `vx/v1/t/`, so the broker's pattern ACL
`vx/v1/t/%u/#` (with use_identity_as_username) confines the device to exactly its own
topics. The CA signs only the identity it enrolls: a CSR asking for any other CN is
refused. Keys live in files under a configured directory, readable by the owner only.
The registry's facts about an issued certificate and the tenant's revocation list (CRL)
are made here too, so nothing else parses or signs X.509. The broker loads the CRL
(Mosquitto `crlfile`; several tenants' CRLs may be concatenated in one PEM file), so a
revoked device is refused at the next TLS handshake. See docs/sync-security.md.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Broker usernames and topic levels must never carry MQTT wildcards or extra levels.
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CLOCK_SKEW = timedelta(minutes=5)
_ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1)
CA_KEY_FILE = "ca.key.pem"
CA_CERT_FILE = "ca.cert.pem"


class EnrollmentRefused(ValueError):
    """A CSR the CA will not sign; `code` is stable, the message is safe to show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _check_id(kind: str, value: str) -> str:
    if not _ID_RE.match(value):
        raise EnrollmentRefused(
            "enroll.bad_id", f"{kind} {value!r} must be 1-64 letters, digits, '_' or '-'")
    return value


def device_common_name(tenant_id: str, device_id: str) -> str:
    """The CN (and so the broker username) of a device: its topic subtree below vx/v1/t/."""
    return f"{_check_id('tenant id', tenant_id)}/d/{_check_id('device id', device_id)}"


def parse_device_common_name(common_name: str) -> tuple[str, str]:
    """(tenant_id, device_id) from a device CN; EnrollmentRefused if it is not one."""
    tenant_id, sep, device_id = common_name.partition("/d/")
    if not sep:
        raise EnrollmentRefused("enroll.bad_identity", f"{common_name!r} is not <tenant>/d/<device>")
    device_common_name(tenant_id, device_id)
    return tenant_id, device_id


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 from the start (never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@dataclass(frozen=True)
class IssuedCredentials:
    """A freshly issued leaf: its private key and certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA key and its self-signed certificate; issues leaf certificates with fixed usages."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, common_name: str, organization: str, now: datetime,
               valid_days: int = 3650) -> CertificateAuthority:
        """A new CA (EC P-256) that may sign leaves only (path length 0)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW).not_valid_after(now + timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def cert_pem(self) -> bytes:
        return _pem_cert(self.cert)

    def issue(
        self, public_key: ec.EllipticCurvePublicKey, subject: x509.Name, now: datetime, *,
        valid_days: int = 365, client: bool = True, server: bool = False,
        ip_addresses: Sequence[str] = (), dns_names: Sequence[str] = (),
    ) -> x509.Certificate:
        """Sign a leaf for `public_key`; never valid beyond the CA itself."""
        not_after = min(now + timedelta(days=valid_days), self.cert.not_valid_after_utc)
        usages = ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else []) + (
            [ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.cert.subject).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=False, crl_sign=False,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
        )
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip))
                                        for ip in ip_addresses]
        sans += [x509.DNSName(d) for d in dns_names]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_with_new_key(
        self, common_name: str, now: datetime, *, valid_days: int = 365, client: bool = True,
        server: bool = False, ip_addresses: Sequence[str] = (), dns_names: Sequence[str] = (),
    ) -> IssuedCredentials:
        """A new key and a leaf for it (service identities: broker, cloud ingest)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = self.issue(key.public_key(), subject, now, valid_days=valid_days, client=client,
                          server=server, ip_addresses=ip_addresses, dns_names=dns_names)
        return IssuedCredentials(_pem_key(key), _pem_cert(cert))


def make_device_csr(tenant_id: str, device_id: str) -> IssuedCredentials:
    """A new device key (EC P-256) and a CSR for its identity; `cert_pem` holds the CSR.

    The box calls this at enrollment and keeps the key; only the CSR leaves the box.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            device_common_name(tenant_id, device_id))])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return IssuedCredentials(_pem_key(key), csr.public_bytes(serialization.Encoding.PEM))


class TenantCa:
    """One tenant's CA: signs CSRs of that tenant's devices, and nothing else."""

    def __init__(self, tenant_id: str, ca: CertificateAuthority) -> None:
        self.tenant_id = _check_id("tenant id", tenant_id)
        self.ca = ca

    @property
    def cert_pem(self) -> bytes:
        return self.ca.cert_pem

    def sign_device_csr(self, csr_pem: bytes, device_id: str, now: datetime,
                        valid_days: int = 365) -> bytes:
        """The device certificate (PEM) for `device_id`; EnrollmentRefused if the CSR is not
        validly signed, uses a weak key, or asks for any identity but this tenant's device."""
        expected = device_common_name(self.tenant_id, device_id)
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise EnrollmentRefused("enroll.bad_csr", f"not a PEM CSR: {exc}") from exc
        if not csr.is_signature_valid:
            raise EnrollmentRefused("enroll.bad_csr", "CSR signature does not verify")
        key = csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
                key.curve, _ACCEPTED_CURVES):
            raise EnrollmentRefused("enroll.weak_key", "device key must be EC P-256 or P-384")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        requested = [str(n.value) for n in names]
        if requested != [expected]:
            raise EnrollmentRefused(
                "enroll.identity_mismatch",
                f"CSR asks for {requested!r}; this device may only be {expected!r}")
        # The subject is built from the enrolled identity, never copied from the CSR.
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.tenant_id),
                             x509.NameAttribute(NameOID.COMMON_NAME, expected)])
        return _pem_cert(self.ca.issue(key, subject, now, valid_days=valid_days, client=True))


@dataclass(frozen=True)
class CertificateFacts:
    """What the device registry keeps of an issued certificate (it never parses X.509)."""

    serial_hex: str
    fingerprint_sha256: str
    not_after: datetime


def certificate_facts(cert_pem: bytes) -> CertificateFacts:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return CertificateFacts(
        serial_hex=format(cert.serial_number, "x"),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        not_after=cert.not_valid_after_utc,
    )


def tenant_crl_pem(ca: TenantCa, revoked: Iterable[tuple[str, datetime]], now: datetime,
                   valid_for: timedelta = timedelta(days=7)) -> bytes:
    """A CRL signed by the tenant CA listing every (serial hex, revoked at) given."""
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.ca.cert.subject)
               .last_update(now).next_update(now + valid_for))
    for serial_hex, at in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(int(serial_hex, 16))
            .revocation_date(at).build())
    crl = builder.sign(ca.ca.key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM)


class TenantCaStore:
    """Tenant CAs on disk: `<root>/<tenant_id>/ca.key.pem` (0600) and `ca.cert.pem`.

    With a passphrase the keys are encrypted at rest as well (PKCS#8, best available).
    """

    def __init__(self, root: Path, passphrase: bytes | None = None) -> None:
        self.root = root
        self._passphrase = passphrase

    def _dir(self, tenant_id: str) -> Path:
        return self.root / _check_id("tenant id", tenant_id)

    def create(self, tenant_id: str, now: datetime) -> TenantCa:
        """Make and store a new CA for `tenant_id`; FileExistsError if it has one."""
        ca = CertificateAuthority.create(f"Voxeron tenant CA {tenant_id}", tenant_id, now)
        d = self._dir(tenant_id)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        d.mkdir(mode=0o700)
        _write_private(d / CA_KEY_FILE, _pem_key(ca.key, self._passphrase))
        (d / CA_CERT_FILE).write_bytes(ca.cert_pem)
        return TenantCa(tenant_id, ca)

    def load(self, tenant_id: str) -> TenantCa:
        """The stored CA of `tenant_id`; FileNotFoundError if there is none."""
        d = self._dir(tenant_id)
        key = serialization.load_pem_private_key((d / CA_KEY_FILE).read_bytes(), self._passphrase)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"CA key of {tenant_id} is not an EC key")
        cert = x509.load_pem_x509_certificate((d / CA_CERT_FILE).read_bytes())
        return TenantCa(tenant_id, CertificateAuthority(key, cert))

    def load_or_create(self, tenant_id: str, now: datetime) -> TenantCa:
        try:
            return self.load(tenant_id)
        except FileNotFoundError:
            return self.create(tenant_id, now)

    def trust_bundle(self) -> bytes:
        """Every tenant CA certificate, concatenated: the broker's client `cafile`."""
        return b"".join(p.read_bytes() for p in sorted(self.root.glob(f"*/{CA_CERT_FILE}")))
