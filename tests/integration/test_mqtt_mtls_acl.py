"""Device identity by client certificate and tenant isolation at the broker.

First the tenant CA on its own (signing and refusal, no broker); then a real Mosquitto
with mutual TLS and the pattern ACL of docs/sync-security.md: the box's real SyncLink
drains an order to the real cloud ingest, a device of tenant A can neither write into nor
read from tenant B's subtree (nor a sibling device's), and clients without a trusted
certificate cannot connect.
"""

from __future__ import annotations

import contextlib
import queue
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.config import BoxIdentity, SyncConfig
from appliance.store import LocalStore
from appliance.sync_link import SyncLink, box_link
from cloud.config import CloudConfig
from cloud.control.db import CloudDb
from cloud.control.ingest import Ingest, ingest_link
from cloud.control.tenant_ca import (
    CA_KEY_FILE,
    CertificateAuthority,
    EnrollmentRefused,
    TenantCa,
    TenantCaStore,
    make_device_csr,
    parse_device_common_name,
)
from sync.contracts.order import OrderLine
from sync.ids import new_id
from sync.mqtt_link import BrokerAddress, MqttError, MqttLink
from sync.topics import DeviceTopics
from tests.integration.cloud_harness import wait_until
from tests.integration.mosquitto_broker import MtlsMosquitto

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
CLOUD_USER = "voxeron-cloud-ingest"
QUIET_S = 1.0  # how long "receives nothing" is watched after the positive control arrived


# --- the tenant CA, no broker ---------------------------------------------------------

@pytest.fixture
def tenant_ca(tmp_path: Path) -> TenantCa:
    return TenantCaStore(tmp_path / "ca").create("ten_a", NOW)


def _verify_issued_by(ca_pem: bytes, cert_pem: bytes) -> None:
    """Raises unless `cert_pem` carries the signature of the CA in `ca_pem`."""
    x509.load_pem_x509_certificate(cert_pem).verify_directly_issued_by(
        x509.load_pem_x509_certificate(ca_pem))


def test_device_csr_is_signed_into_a_client_cert_for_exactly_that_device(
    tenant_ca: TenantCa, tmp_path: Path,
) -> None:
    csr = make_device_csr("ten_a", "dev_1")
    cert_pem = tenant_ca.sign_device_csr(csr.cert_pem, "dev_1", NOW)
    _verify_issued_by(tenant_ca.cert_pem, cert_pem)
    with pytest.raises(InvalidSignature):
        _verify_issued_by(TenantCaStore(tmp_path / "other").create("ten_a", NOW).cert_pem,
                          cert_pem)
    cert = x509.load_pem_x509_certificate(cert_pem)
    [cn] = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn.value == "ten_a/d/dev_1"
    assert parse_device_common_name(str(cn.value)) == ("ten_a", "dev_1")
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.not_valid_before_utc <= NOW < cert.not_valid_after_utc == NOW + timedelta(days=365)
    key = serialization.load_pem_private_key(csr.key_pem, None)
    assert key.public_key() == cert.public_key()  # the box's key, which never left it


def _rsa_csr(common_name: str) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def _csr_with_cns(*names: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n) for n in names])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(("csr", "device_id", "code"), [
    (make_device_csr("ten_a", "dev_2").cert_pem, "dev_1", "enroll.identity_mismatch"),
    (make_device_csr("ten_b", "dev_1").cert_pem, "dev_1", "enroll.identity_mismatch"),
    (_csr_with_cns("ten_a/d/dev_1", "voxeron-cloud-ingest"), "dev_1", "enroll.identity_mismatch"),
    (_csr_with_cns(CLOUD_USER), "dev_1", "enroll.identity_mismatch"),
    (_csr_with_cns(), "dev_1", "enroll.identity_mismatch"),
    (make_device_csr("ten_a", "dev_1").cert_pem, "dev_1/#", "enroll.bad_id"),
    (make_device_csr("ten_a", "dev_1").cert_pem, "+", "enroll.bad_id"),
    (_rsa_csr("ten_a/d/dev_1"), "dev_1", "enroll.weak_key"),
    (b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
     "dev_1", "enroll.bad_csr"),
], ids=["other-device", "other-tenant", "two-cns", "cloud-identity", "no-cn", "wildcard-id",
        "plus-id", "rsa-key", "garbage"])
def test_csr_for_any_other_identity_is_refused(
    tenant_ca: TenantCa, csr: bytes, device_id: str, code: str,
) -> None:
    with pytest.raises(EnrollmentRefused) as refused:
        tenant_ca.sign_device_csr(csr, device_id, NOW)
    assert refused.value.code == code


def test_csr_with_a_broken_signature_is_refused(tenant_ca: TenantCa) -> None:
    der = bytearray(x509.load_pem_x509_csr(make_device_csr("ten_a", "dev_1").cert_pem)
                    .public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(EnrollmentRefused) as refused:
        tenant_ca.sign_device_csr(forged, "dev_1", NOW)
    assert refused.value.code == "enroll.bad_csr"


def test_ca_key_is_owner_only_on_disk_and_reloads(tmp_path: Path) -> None:
    cas = TenantCaStore(tmp_path / "ca", passphrase=b"from-the-secret-store")
    created = cas.create("ten_a", NOW)
    key_file = tmp_path / "ca" / "ten_a" / CA_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca" / "ten_a").stat().st_mode) == 0o700
    assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(FileExistsError):
        cas.create("ten_a", NOW)
    loaded = cas.load_or_create("ten_a", NOW)
    assert loaded.cert_pem == created.cert_pem
    cert = loaded.sign_device_csr(make_device_csr("ten_a", "dev_9").cert_pem, "dev_9", NOW)
    _verify_issued_by(created.cert_pem, cert)
    cas.create("ten_b", NOW)
    assert cas.trust_bundle().count(b"BEGIN CERTIFICATE") == 2


# --- a real Mosquitto with mTLS and the ACL ------------------------------------------

@dataclass(frozen=True)
class Creds:
    """PEM files of one client identity (cert/key None: no client certificate)."""

    cert_file: str | None
    key_file: str | None


@dataclass
class Pki:
    tenant_a: str
    tenant_b: str
    dir: Path
    cas: TenantCaStore
    cloud: Creds

    def device(self, tenant_id: str, device_id: str) -> Creds:
        """Enroll a device the way the box will: key + CSR here, signature by its tenant CA."""
        request = make_device_csr(tenant_id, device_id)
        cert = self.cas.load(tenant_id).sign_device_csr(request.cert_pem, device_id,
                                                        datetime.now(UTC))
        return _write_creds(self.dir / device_id, request.key_pem, cert)


def _write_creds(stem: Path, key_pem: bytes, cert_pem: bytes) -> Creds:
    key, cert = stem.with_suffix(".key"), stem.with_suffix(".crt")
    key.write_bytes(key_pem)
    key.chmod(0o600)
    cert.write_bytes(cert_pem)
    return Creds(str(cert), str(key))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    now = datetime.now(UTC)
    cas = TenantCaStore(d / "tenant-ca")
    tenant_a, tenant_b = new_id("ten"), new_id("ten")
    cas.create(tenant_a, now)
    cas.create(tenant_b, now)
    platform = CertificateAuthority.create("Voxeron platform services CA", "voxeron", now)
    (d / "platform-ca.pem").write_bytes(platform.cert_pem)
    cloud = platform.issue_with_new_key(CLOUD_USER, now)
    return Pki(tenant_a, tenant_b, d, cas, _write_creds(d / "cloud", cloud.key_pem, cloud.cert_pem))


@pytest.fixture(scope="module")
def broker(pki: Pki) -> Iterator[MtlsMosquitto]:
    trusted = [pki.cas.trust_bundle(), (pki.dir / "platform-ca.pem").read_bytes()]
    with MtlsMosquitto(pki.dir / "broker", trusted, superusers=[CLOUD_USER]) as b:
        yield b


def _link(broker: MtlsMosquitto, creds: Creds, client_id: str) -> MqttLink:
    address = BrokerAddress.from_url(broker.url, ca_file=broker.server_ca_file,
                                     cert_file=creds.cert_file, key_file=creds.key_file)
    return MqttLink(address, client_id, clean_session=True)


@contextlib.contextmanager
def connected(broker: MtlsMosquitto, creds: Creds, client_id: str,
              subscribe: tuple[str, ...] = ()) -> Iterator[tuple[MqttLink, queue.Queue[str]]]:
    """A connected client whose messages land in a queue as 'topic payload'."""
    link = _link(broker, creds, client_id)
    got: queue.Queue[str] = queue.Queue()
    for topic_filter in subscribe:
        link.subscribe(topic_filter, lambda t, p: got.put(f"{t} {p.decode()}"), qos=1)
    try:
        link.connect(timeout=5)
        yield link, got
    finally:
        link.close()


def _drain(got: queue.Queue[str]) -> list[str]:
    items = []
    with contextlib.suppress(queue.Empty):
        while True:
            items.append(got.get_nowait())
    return items


def test_box_drains_an_order_to_the_cloud_over_mtls_and_is_acked(
    tmp_path: Path, pki: Pki, broker: MtlsMosquitto,
) -> None:
    identity = BoxIdentity(tenant_id=pki.tenant_a, device_id=new_id("dev"),
                           data_dir=tmp_path / "box")
    box_creds = pki.device(identity.tenant_id, identity.device_id)
    store = LocalStore(identity.db_path)
    order, _ = store.submit_order(
        tenant_id=identity.tenant_id, device_id=identity.device_id, call_id=new_id("call"),
        caller="+15550100", currency="USD", blueprint_hash="bp", idempotency_key=new_id("job"),
        lines=[OrderLine(line_id="l1", item_id="coke", name="Coke", quantity=2,
                         unit_price_cents=250)],
        now=datetime.now(UTC),
    )
    cloud_cfg = CloudConfig(
        db_path=tmp_path / "cloud.sqlite3", mqtt_url=broker.url,
        ingest_client_id=new_id("job"), ingest_clean_session=True,
        mqtt_ca_file=broker.server_ca_file, mqtt_cert_file=pki.cloud.cert_file,
        mqtt_key_file=pki.cloud.key_file,
    )
    sync_cfg = SyncConfig(
        mqtt_url=broker.url, mqtt_ca_file=broker.server_ca_file,
        mqtt_cert_file=box_creds.cert_file, mqtt_key_file=box_creds.key_file,
        ack_timeout_s=2.0, health_interval_s=0.3,
    )
    db = CloudDb(cloud_cfg.db_path)
    ingest = Ingest(db, ingest_link(cloud_cfg))
    ingest.start(connect_timeout=5)
    sync = SyncLink(store, box_link(identity, sync_cfg), identity, sync_cfg, idle_poll_s=0.05)
    thread = threading.Thread(target=sync.run, kwargs={"connect_timeout": 5.0}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: store.outbox_depth() == 0, timeout=15, what="outbox acked over mTLS")
        stored = db.order(order.order_id)
        assert stored is not None
        assert (stored.tenant_id, stored.device_id) == (identity.tenant_id, identity.device_id)
        wait_until(lambda: [d.online for d in db.devices(identity.tenant_id)] == [True],
                   timeout=5, what="device status through the ACL")
    finally:
        sync.stop()
        thread.join(10)
        ingest.stop()
        db.close()
        store.close()
    assert not thread.is_alive()


def test_device_cannot_publish_outside_its_own_subtree(pki: Pki, broker: MtlsMosquitto) -> None:
    dev_a, sibling, dev_b = new_id("dev"), new_id("dev"), new_id("dev")
    own = DeviceTopics(pki.tenant_a, dev_a)
    foreign = [DeviceTopics(pki.tenant_b, dev_b).events, DeviceTopics(pki.tenant_a, sibling).events,
               DeviceTopics(pki.tenant_b, dev_a).events, f"vx/v1/t/{pki.tenant_a}/broadcast"]
    # Narrow filters: retained status of other tests' devices must not count as a leak.
    watched = (own.events, f"vx/v1/t/{pki.tenant_b}/#", f"vx/v1/t/{pki.tenant_a}/d/{sibling}/#",
               f"vx/v1/t/{pki.tenant_a}/broadcast")
    with connected(broker, pki.cloud, new_id("job"), subscribe=watched) as (cloud, seen), \
            connected(broker, pki.device(pki.tenant_a, dev_a), dev_a) as (device, _):
        cloud.publish(own.events, b"probe", qos=1)  # returns once the cloud's SUBACKs are in
        assert seen.get(timeout=5) == f"{own.events} probe"
        for topic in foreign:
            device.publish(topic, b"intrusion", qos=1)  # MQTT 3.1.1: PUBACKed, then dropped
        device.publish(own.events, b"marker", qos=1)
        # One connection is delivered in order: anything let through would come first.
        assert seen.get(timeout=5) == f"{own.events} marker"
        time.sleep(QUIET_S)
        assert _drain(seen) == []


def test_device_cannot_read_outside_its_own_subtree(pki: Pki, broker: MtlsMosquitto) -> None:
    dev_a, sibling, dev_b = new_id("dev"), new_id("dev"), new_id("dev")
    own = DeviceTopics(pki.tenant_a, dev_a)
    foreign = [DeviceTopics(pki.tenant_b, dev_b), DeviceTopics(pki.tenant_a, sibling),
               DeviceTopics(pki.tenant_b, dev_a)]  # its own device id under another tenant
    filters = (own.desired, *(t.desired for t in foreign), f"vx/v1/t/{pki.tenant_b}/#",
               "vx/v1/t/+/d/+/down/desired", "#")
    with connected(broker, pki.cloud, new_id("job")) as (cloud, _):
        for topics in foreign:
            cloud.publish(topics.desired, b"secret menu", qos=1, retain=True)
        cloud.publish(own.desired, b"yours", qos=1, retain=True)
        with connected(broker, pki.device(pki.tenant_a, dev_a), dev_a,
                       subscribe=filters) as (device, got):
            # The own filter is subscribed first, so its retained message comes first.
            yours, probe = f"{own.desired} yours", f"{own.reported} probe"
            assert got.get(timeout=5) == yours
            # Its own publish comes back (through '#') only after all its SUBSCRIBEs were
            # handled, so every filter is live before the foreign live message is sent.
            device.publish(own.reported, b"probe", qos=1)
            while (item := got.get(timeout=5)) != probe:
                assert item == yours, f"device A read {item!r}"
            cloud.publish(foreign[0].commands, b"live", qos=1)
            time.sleep(QUIET_S)
            # Overlapping filters may repeat its own messages; nothing else may arrive.
            assert set(_drain(got)) <= {yours, probe}
        for topics in (own, *foreign):
            cloud.publish(topics.desired, b"", qos=1, retain=True)


@pytest.mark.parametrize("who", ["no-certificate", "unknown-ca", "expired"])
def test_client_without_a_trusted_certificate_cannot_connect(
    pki: Pki, broker: MtlsMosquitto, who: str,
) -> None:
    device_id = new_id("dev")
    if who == "no-certificate":
        creds = Creds(None, None)
    else:
        now = datetime.now(UTC)
        request = make_device_csr(pki.tenant_a, device_id)
        if who == "unknown-ca":  # a look-alike CA for tenant A that the broker never trusted
            rogue = TenantCaStore(pki.dir / "rogue-ca").load_or_create(pki.tenant_a, now)
            cert = rogue.sign_device_csr(request.cert_pem, device_id, now)
        else:
            cert = pki.cas.load(pki.tenant_a).sign_device_csr(
                request.cert_pem, device_id, now - timedelta(days=30), valid_days=1)
        creds = _write_creds(pki.dir / f"{who}-{device_id}", request.key_pem, cert)
    reason = "peer did not return a certificate" if who == "no-certificate" else (
        "certificate verify failed")
    seen_before = broker.log_file.read_text().count(reason)
    link = _link(broker, creds, device_id)
    try:
        with pytest.raises(MqttError):
            link.connect(timeout=2)
    finally:
        link.close()
    assert broker.log_file.read_text().count(reason) > seen_before, "refused for another reason"
