"""Schemathesis against the live OpenAPI of the real app served by uvicorn.

Generated requests (valid and invalid) go to every documented operation, once with an ops
token and once with a tenant token; no answer may be a 5xx, and every 4xx body must be an
ErrorEnvelope. Examples are bounded so the run takes about a minute; the seed is fixed
so a failure reproduces, and the output names the failing request.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from cloud.config import CloudConfig
from cloud.control.app import create_app
from tests.serve_asgi import serve_asgi

BOOT = "fuzz-ops-" + "f" * 40
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

HOOKS = textwrap.dedent('''
    """Custom schemathesis check: error answers of the API are ErrorEnvelopes."""
    import json
    import os
    from pathlib import Path

    import schemathesis

    from sync.contracts.errors import ErrorEnvelope

    SEEN = Path(os.environ["FUZZ_SEEN_DIR"])


    @schemathesis.check
    def error_is_envelope(ctx, response, case):
        if response.status_code < 400:
            return None
        (SEEN / f"status-{response.status_code}").touch()  # proof the check ran
        try:
            ErrorEnvelope.model_validate(json.loads(response.content))
        except Exception as exc:
            raise AssertionError(
                f"{response.status_code} body is not an ErrorEnvelope: "
                f"{response.content[:300]!r} ({exc})") from None
        return None
''')


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    cfg = CloudConfig(db_path=tmp_path / "cloud.sqlite3", tenant_ca_dir=tmp_path / "ca",
                      bootstrap_ops_token=SecretStr(BOOT))
    with serve_asgi(create_app(cfg)) as url:
        yield url


def _schemathesis(base: str, token: str, tenant_id: str, workdir: Path, examples: int,
                  ) -> subprocess.CompletedProcess[str]:
    (workdir / "fuzz_hooks.py").write_text(HOOKS)
    # Most generated requests should reach a real tenant, not stop at its 404.
    (workdir / "schemathesis.toml").write_text(
        f'[parameters]\n"path.tenant_id" = "{tenant_id}"\n')
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "FUZZ_SEEN_DIR": str(workdir),
           "PYTHONPATH": os.pathsep.join([str(workdir), str(Path(__file__).parents[2])])}
    # One worker: with two threads, hypothesis's lambda descriptions hit a CPython 3.11
    # ast.parse bug ("AST constructor recursion depth mismatch") and the run errors out.
    cmd = [str(SCHEMATHESIS), "--no-color", "--config-file", str(workdir / "schemathesis.toml"), "run",
           f"{base}/openapi.json", "--checks", "not_a_server_error,error_is_envelope",
           "--phases", "examples,coverage,fuzzing", "--max-examples", str(examples),
           "--seed", "417", "--generation-deterministic", "--workers", "1",
           "--request-timeout", "20", "-H", f"Authorization: Bearer {token}",
           "--suppress-health-check", "all",
           "--continue-on-failure"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=workdir,
                          env=env, check=False)


@pytest.mark.slow  # about a minute and a half: two schemathesis runs
def test_schemathesis_finds_no_5xx_and_only_error_envelopes(served: str, tmp_path: Path,
                                                             ) -> None:
    ops = {"Authorization": f"Bearer {BOOT}"}
    made = httpx.post(f"{served}/api/v1/tenants", headers=ops, json={
        "tenant_id": "fuzzed", "name": "fuzzed", "quotas": {"api_requests_per_s": 100_000}})
    assert made.status_code == 201, made.text
    tok = httpx.post(f"{served}/api/v1/tenants/fuzzed/tokens", headers=ops,
                     json={"name": "fuzz", "scopes": ["tenant:read", "tenant:write"]})
    assert tok.status_code == 201, tok.text

    for who, token, examples in (("ops", BOOT, 8), ("tenant", tok.json()["secret"], 4)):
        workdir = tmp_path / who
        workdir.mkdir()
        run = _schemathesis(served, token, "fuzzed", workdir, examples)
        report = run.stdout[-6000:] + run.stderr[-2000:]
        print(f"--- schemathesis as {who} ---\n{report}")
        assert run.returncode == 0, report
        generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
        assert generated and int(generated[1]) >= 200, report  # it really sent requests
        seen = {p.name for p in workdir.glob("status-*")}
        assert {"status-404", "status-422"} <= seen, seen  # error bodies were checked
