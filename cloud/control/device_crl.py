"""Facts about issued device certificates and the tenant CA's revocation list (CRL).

Kept beside `tenant_ca` (which signs) so the registry stores what it needs (serial,
SHA-256 fingerprint, expiry) without parsing X.509 itself. The broker loads the CRL
(Mosquitto `crlfile`; several tenants' CRLs may be concatenated in one PEM file), so a
revoked device is refused at the next TLS handshake.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from cloud.control.tenant_ca import TenantCa


@dataclass(frozen=True)
class CertificateFacts:
    """What the registry keeps of an issued certificate."""

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
