"""`voxeron cloud secrets rotate | new-key`: integration secret keys from the shell.

`new-key` prints a fresh Fernet key (stdout alone) to put first in
VOXERON_CLOUD_SECRET_KEYS or the key file. `rotate [--tenant ID]` seals every stored POS
token and webhook secret (of every tenant, or of one) under the newest configured key
(and seals clear legacy ones); it exits 1,
naming each one, if a secret opens with no configured key, so the old key is not dropped
while something still needs it.
"""

from __future__ import annotations

import argparse
import sys

from cloud.config import CloudConfig


def run_secrets_command(args: argparse.Namespace, cfg: CloudConfig) -> int:
    from cloud.db import open_database
    from cloud.integration.secret_box import SecretBox, SecretKeyError, new_key
    from cloud.integration.secret_rotation import rotate_secrets

    if args.action == "new-key":
        print(new_key())
        return 0
    if args.action != "rotate":
        print("usage: voxeron cloud secrets (rotate [--tenant ID] | new-key)", file=sys.stderr)
        return 2
    try:
        secrets = SecretBox.from_config(cfg)
    except SecretKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    password = cfg.database_app_password
    db = open_database(cfg.control_database_url, app_role=cfg.database_app_role,
                       app_password=password.get_secret_value() if password else None)
    try:
        report = rotate_secrets(db, secrets, tenant_id=args.tenant)
    finally:
        db.close()
    print(f"rotated to key {secrets.key_ids[0]}: {report.resealed} resealed, "
          f"{report.sealed_legacy} clear secrets sealed, {report.current} already current, "
          f"{len(report.undecryptable)} undecryptable")
    for tenant_id, integration_id in report.undecryptable:
        print(f"error: tenant {tenant_id} integration {integration_id}: no configured key "
              "opens its secret", file=sys.stderr)
    return 0 if report.ok else 1
