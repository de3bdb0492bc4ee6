"""Firmware and OTA for the box: signed bundles, A/B apply, health-checked rollback.

Not built yet; the walking skeleton only reserves the package. See images/README.md.
"""

FIRMWARE_VERSION = "0.1.0"
