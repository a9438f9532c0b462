"""Schema-driven requests against a live server (schemathesis: positive and negative data for every operation of
the OpenAPI document): never a 5xx, and every answer as the document says (status, content type, body schema).

Bounded: a fixed number of derandomized examples per operation and mode, without shrinking, so the pass takes
minutes. Every operation runs even when one fails, and the test reports them all.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from localft.api.server import EmbeddedServer

pytestmark = pytest.mark.slow
EXAMPLES = 50
"""Per operation and generation mode."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_operation_answers_as_documented(idle_server: EmbeddedServer) -> None:
    schema = schemathesis.openapi.from_url(f"{idle_server.root_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []
    sent = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def run(case: Any) -> None:
                nonlocal sent
                sent += 1
                case.call_and_validate(checks=CHECKS)

            try:
                run()
            except Unsatisfiable:  # negative mode: a free-form path id or no parameters leave nothing to break
                continue
            except (Exception, FailureGroup) as exc:  # one operation's failure must not hide the others'
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:2000])
    assert not failures, f"{len(failures)} operations failed after {sent} requests:\n" + "\n\n".join(failures)
    assert sent >= 10 * len(operations)
