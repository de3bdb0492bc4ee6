"""`voxeron cloud token create --ops | --tenant ID`: issue an API token from the shell.

The bootstrap path of a fresh install: the first ops token cannot come from the API.
The secret is printed once, on stdout alone, so `$(voxeron cloud token create --ops)`
captures it; the database keeps only its SHA-256.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from cloud.config import CloudConfig


def run_token_command(args: argparse.Namespace, cfg: CloudConfig) -> int:
    from cloud.control.control_errors import ControlError
    from cloud.control.ops_tokens import create_cli_token

    if args.action != "create" or args.ops == bool(args.tenant):
        print("usage: voxeron cloud token create (--ops | --tenant TENANT_ID) [--name N] "
              "[--expires-days D]", file=sys.stderr)
        return 2
    if args.expires_days < 0:
        print("--expires-days must be 0 (never) or more", file=sys.stderr)
        return 2
    try:
        token = create_cli_token(cfg, datetime.now(UTC), tenant_id=args.tenant, name=args.name,
                                 expires_in_days=args.expires_days or None)
    except ControlError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(f"token {token.token_id} scopes={','.join(token.scopes)} "
          f"expires={token.expires_at.isoformat() if token.expires_at else 'never'}",
          file=sys.stderr)
    print(token.secret)
    return 0
