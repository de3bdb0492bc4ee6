"""The `voxeron` command (filled in below)."""
def main() -> None:
    raise SystemExit("not yet")
