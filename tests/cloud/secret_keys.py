"""The integration-secret key the cloud tests share, in-process and in subprocesses.

A fixed test key (never a production one): tests that store an integration and the
workers (threads or `voxeron cloud worker` processes) that deliver it must hold the same
key, exactly as production replicas must.
"""

from __future__ import annotations

from cloud.integration.secret_box import SecretBox

TEST_KEY = "or29gTp4oosKwMz0qjDhH-s_vWgHW2zdIewiI8j65Rc="
TEST_SECRETS = SecretBox([TEST_KEY], "tests.cloud.secret_keys")


def secret_env() -> dict[str, str]:
    """The environment giving a cloud process the test key."""
    return {"VOXERON_CLOUD_SECRET_KEYS": TEST_KEY}
