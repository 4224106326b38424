"""Every route the local server serves is a contract operation, and every answer it gives is
valid against that operation's schema in the vendored contract, with undeclared fields forbidden.

The answers are validated here, by the test's own reading of the contract
(tests/contract/contract_schema.py), not by the server's middleware.
"""

from __future__ import annotations

from tests.contract.contract_schema import operation, problems, response_schema
from tests.contract.drive import not_contract, route_of, served_routes


def test_every_served_route_is_a_contract_operation(local_server):
    routes = served_routes(local_server.app)
    assert len(routes) > 40
    unknown = sorted(f"{m} {p}" for m, p in routes if not not_contract((m, p)) and operation(m, p) is None)
    assert not unknown, f"routes the contract does not have: {unknown}"


def test_the_validator_can_fail():
    task = {"task_id": "t1", "task_type": "api_buckets_batches_process", "status": "COMPLETED"}
    assert problems("TaskResponse", task) == []
    assert problems("TaskResponse", {**task, "progress": 3})  # a field the contract does not have
    assert problems("TaskResponse", {**task, "additional_data": {"batch_id": "b", "processed": 1}})
    assert problems("TaskResponse", {**task, "status": "DONE"})
    assert problems("TaskResponse", {"task_id": "t1", "status": "COMPLETED"})  # task_type is required
    assert problems("BatchModel", {"bucket_id": "b", "status": "COMPLETED", "nope": 1})
    assert problems("ErrorResponse", {"success": False, "status": 404, "error": {"message": "x"}})


def test_every_route_answers_what_the_contract_declares(driven):
    """Every answer, successes and errors, against its contract schema (strict)."""
    bad: list[str] = []
    checked = 0
    for ex in driven.exchanges:
        route = route_of(driven.routes, ex.method, ex.path)
        op = operation(ex.method, ex.path)
        if op is None:
            assert route is None or not_contract(route), f"{ex.method} {ex.path} is no contract operation"
            continue
        name = response_schema(op, ex.status)
        if name is None or not ex.body:
            continue
        assert ex.content_type.startswith("application/json"), (ex.method, ex.path, ex.content_type)
        checked += 1
        for p in problems(name, ex.json()):
            bad.append(f"{ex.method} {op['path']} -> {ex.status} {name}: {p}")
    assert checked > 60
    assert not bad, "answers outside the contract:\n" + "\n".join(sorted(set(bad))[:80])


def test_every_route_was_driven_to_a_success(driven):
    exercised: dict[tuple[str, str], set[int]] = {}
    for ex in driven.exchanges:
        route = route_of(driven.routes, ex.method, ex.path)
        if route is not None:
            exercised.setdefault(route, set()).add(ex.status)
    missed = sorted(
        f"{m} {p}"
        for m, p in driven.routes
        if not not_contract((m, p)) and not any(200 <= s < 300 for s in exercised.get((m, p), ()))
    )
    assert not missed, f"routes never answered with a success: {missed}"
    assert any(ex.status == 404 for ex in driven.exchanges)  # errors were seen (and checked) too


def test_the_servers_own_check_saw_no_undeclared_field(driven):
    stats = driven.stats
    json_answers = sum(
        1 for ex in driven.exchanges if ex.content_type.startswith("application/json") and ex.path.startswith("/v1/")
    )
    undeclared = sum(stats["responses_undeclared"].values())  # operations the contract gives no schema
    assert stats["responses_checked"] + undeclared == json_answers > 60
    assert stats["undeclared_on_wire"] == 0
    assert stats["requests_refused_total"] == 0  # every request the driver sent is one the contract accepts
