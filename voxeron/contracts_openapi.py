"""`voxeron contracts check` for the cloud's HTTP API: live OpenAPI vs its frozen snapshot.

contracts/public-api/<major.minor>.openapi.json freezes the document of each API version
(never rewritten). Within a minor version additive changes pass (new paths, operations,
optional parameters and fields, new response codes); removing a path, an operation, a
parameter, a response code or a schema property, newly requiring a parameter, body or
field, or changing a type fails. The comparison is pure dict work; only `live_openapi`
imports the cloud.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sync.contracts.compat import breaking_changes

SURFACE = "public-api"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def snapshot_path(root: Path, version: str) -> Path:
    return root / SURFACE / f"{version}.openapi.json"


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def _version_key(p: Path) -> tuple[int, int]:
    major, minor = p.name.removesuffix(".openapi.json").split(".")
    return int(major), int(minor)


def _params(op: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p.get("in", ""), p.get("name", "")): p for p in op.get("parameters", [])}


def _operation_changes(old: dict[str, Any], new: dict[str, Any], where: str) -> list[str]:
    out: list[str] = []
    old_params, new_params = _params(old), _params(new)
    for key, p in old_params.items():
        here = f"{where} parameter {key[1]} ({key[0]})"
        if key not in new_params:
            out.append(f"{here}: removed")
            continue
        if new_params[key].get("required") and not p.get("required"):
            out.append(f"{here}: newly required")
        out += [f"{here}: {c}" for c in breaking_changes(p.get("schema", {}),
                                                         new_params[key].get("schema", {}))]
    for key, p in new_params.items():
        if key not in old_params and p.get("required"):
            out.append(f"{where} parameter {key[1]} ({key[0]}): new and required")
    old_body, new_body = old.get("requestBody"), new.get("requestBody")
    if new_body and new_body.get("required") and not (old_body and old_body.get("required")):
        out.append(f"{where} request body: newly required")
    if old_body and new_body:
        for media, content in old_body.get("content", {}).items():
            if media not in new_body.get("content", {}):
                out.append(f"{where} request body {media}: no longer accepted")
            else:
                out += [f"{where} request body: {c}" for c in breaking_changes(
                    content.get("schema", {}), new_body["content"][media].get("schema", {}))]
    for status in old.get("responses", {}):
        if status not in new.get("responses", {}):
            out.append(f"{where} response {status}: removed")
    return out


def openapi_breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every change from `old` to `new` that could break an existing client."""
    out: list[str] = []
    new_paths = new.get("paths", {})
    for path, ops in old.get("paths", {}).items():
        if path not in new_paths:
            out.append(f"{path}: path removed")
            continue
        for method in _METHODS:
            if method in ops:
                where = f"{method.upper()} {path}"
                if method not in new_paths[path]:
                    out.append(f"{where}: operation removed")
                else:
                    out += _operation_changes(ops[method], new_paths[path][method], where)
    new_schemas = new.get("components", {}).get("schemas", {})
    for name, schema in old.get("components", {}).get("schemas", {}).items():
        if name not in new_schemas:
            out.append(f"components/schemas/{name}: removed")
        else:
            out += [f"components/schemas/{name}: {c}"
                    for c in breaking_changes(schema, new_schemas[name])]
    return out


def api_version(doc: dict[str, Any]) -> str:
    version = str(doc.get("info", {}).get("version", ""))
    parts = version.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"API version {version!r} must be major.minor (FastAPI(version=...))")
    return version


def check_openapi(root: Path, live: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, notes): breaking changes fail; additive ones since the snapshot are notes."""
    problems: list[str] = []
    notes: list[str] = []
    version = api_version(live)
    p = snapshot_path(root, version)
    if not p.exists():
        problems.append(f"{SURFACE} {version}: no snapshot {p}; run `voxeron contracts write` "
                        "and commit it")
    else:
        frozen = json.loads(p.read_text())
        problems += [f"{SURFACE} {version}: {c} (bump the major version, or keep it compatible)"
                     for c in openapi_breaking_changes(frozen, live)]
        if not problems and render(frozen) != render(live):
            notes.append(f"{SURFACE} {version}: additive changes since {p.name}; bump the minor "
                         "version and run `voxeron contracts write` to freeze them")
    versions = sorted((root / SURFACE).glob("*.openapi.json"), key=_version_key)
    for older, newer in zip(versions, versions[1:], strict=False):
        if _version_key(older)[0] == _version_key(newer)[0]:
            problems += [f"{SURFACE}: {newer.name} breaks {older.name} within a major version: "
                         f"{c}" for c in openapi_breaking_changes(
                             json.loads(older.read_text()), json.loads(newer.read_text()))]
    return problems, notes


def write_openapi(root: Path, live: dict[str, Any]) -> Path | None:
    """Freeze the live document under its version unless that snapshot already exists."""
    p = snapshot_path(root, api_version(live))
    if p.exists():
        return None
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render(live))
    return p


def live_openapi() -> dict[str, Any]:
    from cloud.control.openapi_doc import public_openapi

    return public_openapi()
