"""Schema-driven fuzzing: schemathesis generates requests from switchyard's own OpenAPI description
(valid and invalid ones) and sends them to the real server process in front of the fake backend.
No request may get a 5xx from switchyard itself, and the process must stay up.

Run alone with ``-s`` to see how many inputs were tried (printed at the end of the module).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

from dynamo.nemo_switchyard.openapi import OPENAPI  # noqa: E402

from processes import http_get  # noqa: E402

EXAMPLES_PER_OPERATION = 30  # 11 operations, of which 5 take bodies: about 300 inputs in all

schema = schemathesis.openapi.from_dict(OPENAPI)
schema.config.generation.update(modes=list(schemathesis.GenerationMode), max_examples=EXAMPLES_PER_OPERATION, deterministic=True)

TRIED: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def fuzzed(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--max-body-size", "1048576", backend=fake_backend)
    yield server
    total = sum(TRIED.values())
    print(f"\nschemathesis: {total} inputs over {len(TRIED)} operations; statuses {dict(sorted(STATUSES.items()))}")
    assert server.process.poll() is None, "switchyard died during the fuzz run"
    assert http_get(server.url + "/health")[0] == 200


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_makes_switchyard_fail(case, fuzzed):
    response = case.call(base_url=fuzzed.url, timeout=30)
    TRIED[case.operation.label] += 1
    STATUSES[response.status_code] += 1
    source = response.headers.get("x-switchyard-error-source")
    assert not (response.status_code >= 500 and source != "backend"), (
        f"{case.method} {case.path} -> {response.status_code} {response.text[:500]}\nbody: {case.body!r}"
    )
    if response.status_code >= 400 and source == "switchyard":  # switchyard's own errors are OpenAI-shaped
        assert set(json.loads(response.content)["error"]) == {"message", "type", "param", "code"}
    assert fuzzed.process.poll() is None
