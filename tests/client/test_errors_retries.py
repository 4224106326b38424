"""Error mapping, retries and timeouts against a real local server."""

from __future__ import annotations

import socket
import threading
import time
import traceback

import pytest

from mixpeek_magics.client import AsyncMixpeek, Mixpeek, errors

from .conftest import resolve, uid

SCHEMA = {"properties": {"content": {"type": "text"}}}


def _make(kind, srv, **kw):
    kw.setdefault("api_key", srv.api_key)
    kw.setdefault("base_url", srv.base_url)
    return Mixpeek(**kw) if kind == "sync" else AsyncMixpeek(**kw)


async def _close(c):
    await resolve(c.close())


def log_count(srv, method: str, path: str) -> int:
    return sum(1 for entry in srv.request_log if entry[0] == method and entry[1] == path)


@pytest.fixture(params=["sync", "async"])
def kind(request):
    return request.param


async def test_401_bad_key(kind, srv):
    bad = "sk_test_definitelywrongkey_QQQQ"
    c = _make(kind, srv, api_key=bad)
    try:
        with pytest.raises(errors.AuthenticationError) as info:
            await resolve(c.organization.get())
    finally:
        await _close(c)
    err = info.value
    assert err.status_code == 401
    assert str(err).startswith(f"API key rejected by {srv.base_url}: run %mixpeek_auth again")
    text = str(err) + repr(err) + "".join(traceback.format_exception(err))
    assert bad not in text


async def test_403_read_only_key_writing(kind, srv, namespace):
    ro = srv.create_api_key(read_only=True)
    c = _make(kind, srv, api_key=ro, namespace=namespace)
    try:
        assert (await resolve(c.organization.get())).organization_id  # reads are fine
        await resolve(c.tasks.list(limit=1))  # list is a read
        with pytest.raises(errors.PermissionDeniedError) as info:
            await resolve(c.buckets.create(uid("bkt"), SCHEMA))
    finally:
        await _close(c)
    assert info.value.status_code == 403 and "read-only" in str(info.value)
    assert ro not in str(info.value) + repr(info.value)


async def test_404(kind, srv, namespace):
    c = _make(kind, srv, namespace=namespace)
    try:
        with pytest.raises(errors.NotFoundError) as info:
            await resolve(c.buckets.get("no-such-bucket"))
    finally:
        await _close(c)
    assert info.value.status_code == 404 and "no-such-bucket" in str(info.value)


@pytest.mark.invalid_request
async def test_422_field_paths(kind, srv):
    c = _make(kind, srv)
    try:
        with pytest.raises(errors.ValidationError) as info:
            await resolve(c.namespaces.create(uid("ns"), [{"version": "v1"}]))
    finally:
        await _close(c)
    err = info.value
    assert err.status_code == 422
    assert ("body.feature_extractors.0.feature_extractor_name", "Field required") in err.fields
    assert "body.feature_extractors.0.feature_extractor_name" in str(err)


@pytest.mark.invalid_request
async def test_422_undeclared_key_names_it_and_the_accepted_keys(kind, srv):
    """The contract's 422: ErrorResponse whose details carry the errors and the accepted keys."""
    c = _make(kind, srv)
    try:
        ns = (
            await resolve(
                c.namespaces.create(uid("ns"), [{"feature_extractor_name": "text_extractor", "version": "v1"}])
            )
        ).namespace_id
        bucket = await resolve(
            c.buckets.create(uid("bkt"), {"properties": {"content": {"type": "text"}}}, namespace=ns)
        )
        with pytest.raises(errors.ValidationError) as info:
            await resolve(
                c.uploads.create_batch(
                    bucket.bucket_id,
                    [{"filename": "a.txt", "content_type": "text/plain", "colour": "blue"}],
                    namespace=ns,
                )
            )
    finally:
        await _close(c)
    err = info.value
    assert err.status_code == 422 and err.error_type
    assert any(loc.endswith("colour") and "not permitted" in msg for loc, msg in err.fields), err.fields
    assert {"filename", "content_type", "skip_duplicates"} <= set(err.accepted_keys)
    assert "colour" in str(err) and "accepted keys" in str(err)


@pytest.mark.invalid_request
def test_recorder_catches_what_the_contract_refuses(srv):
    """The request recorder the suites run under can fail: an undeclared key, a
    second status, an unknown route are all reported."""
    from tests.fixtures.request_recorder import recording

    with recording() as rec:
        with Mixpeek(api_key=srv.api_key, base_url=srv.base_url) as c:
            for body in ({"status": "COMPLETED", "colour": "blue"}, {"status": "DONE"}):
                try:
                    c._execute(_raw(c, "POST", "/v1/tasks/list", body))
                except errors.MixpeekError:
                    pass  # the server refuses them too; the point is what the recorder says
            with pytest.raises(errors.NotFoundError):
                c._execute(_raw(c, "GET", "/v1/tasks/t/progress", None))
    found = rec.problems()
    assert any("colour" in p for p in found), found
    assert any("DONE" in p for p in found), found
    assert any("/v1/tasks/t/progress: not an operation" in p for p in found), found
    assert len(rec.requests) == 3 and len(found) == 3


def _raw(c, method, path, body):
    from mixpeek_magics.client._core import RequestSpec, call

    return call(RequestSpec(method, path, json=body, params={"limit": 1} if body else None), c._context())


async def test_409_conflict(kind, srv):
    c = _make(kind, srv)
    name = uid("ns")
    try:
        await resolve(c.namespaces.create(name, [{"feature_extractor_name": "text_extractor", "version": "v1"}]))
        with pytest.raises(errors.ConflictError):
            await resolve(c.namespaces.create(name, [{"feature_extractor_name": "text_extractor", "version": "v1"}]))
    finally:
        await _close(c)


async def test_429_without_retries_exposes_retry_after(kind, fresh_srv):
    fresh_srv.update_settings(fault_rate_429=1.0, retry_after_seconds=3)
    c = _make(kind, fresh_srv, max_retry_seconds=0)
    try:
        with pytest.raises(errors.RateLimitError) as info:
            await resolve(c.tasks.get("task_x"))
    finally:
        await _close(c)
    assert info.value.status_code == 429 and info.value.retry_after == 3


async def test_5xx_without_retries(kind, fresh_srv):
    fresh_srv.update_settings(fault_rate_503=1.0, retry_after_seconds=0)
    c = _make(kind, fresh_srv, max_retry_seconds=0)
    try:
        with pytest.raises(errors.ServerError) as info:
            await resolve(c.organization.get())
    finally:
        await _close(c)
    assert info.value.status_code == 503


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_connection_refused(kind):
    port = _closed_port()
    key = "sk_test_connection_refused_KEY1"
    c = (Mixpeek if kind == "sync" else AsyncMixpeek)(
        api_key=key, base_url=f"http://127.0.0.1:{port}", max_retry_seconds=1
    )
    started = time.monotonic()
    try:
        with pytest.raises(errors.APIConnectionError) as info:
            await resolve(c.organization.get())
    finally:
        await _close(c)
    elapsed = time.monotonic() - started
    assert not isinstance(info.value, errors.APITimeoutError)
    assert str(info.value) == (
        f"Cannot reach http://127.0.0.1:{port}: is the server running? (%mixpeek_auth --local starts one)"
    )
    assert elapsed < 3  # retried within the 1 s budget, then gave up
    assert key not in "".join(traceback.format_exception(info.value))


async def test_timeout_via_latency(kind, fresh_srv):
    fresh_srv.update_settings(latency_ms=1500)
    c = _make(kind, fresh_srv, timeout=0.3, max_retry_seconds=0)
    started = time.monotonic()
    try:
        with pytest.raises(errors.APITimeoutError) as info:
            await resolve(c.organization.get())
        # a per-call timeout overrides the client's
        org = await resolve(c.organization.get(timeout=10))
        assert org.organization_id
    finally:
        await _close(c)
    assert time.monotonic() - started < 10
    assert isinstance(info.value, errors.APIConnectionError)


class _ClearFaults(threading.Thread):
    """Clears injected faults ``seconds`` after the first request reaches the server.

    Counting from the first request (not from a wall-clock start) keeps the
    test meaningful on a loaded machine, where building the client can take
    longer than ``seconds``: the first answer is always a fault."""

    def __init__(self, srv, seconds: float) -> None:
        super().__init__(daemon=True)
        self.srv, self.seconds, self.stopped = srv, seconds, threading.Event()
        self.seen = len(srv.request_log)

    def run(self) -> None:
        while len(self.srv.request_log) == self.seen:
            if self.stopped.wait(0.01):
                return
        if not self.stopped.wait(self.seconds):
            self.srv.update_settings(fault_rate_429=0.0, fault_rate_503=0.0)

    def cancel(self) -> None:
        self.stopped.set()


def _clear_faults_after(srv, seconds: float) -> _ClearFaults:
    clearer = _ClearFaults(srv, seconds)
    clearer.start()
    return clearer


@pytest.mark.parametrize("fault", ["fault_rate_429", "fault_rate_503"])
async def test_retry_honours_retry_after(kind, fresh_srv, fault):
    fresh_srv.update_settings(**{fault: 1.0}, retry_after_seconds=1.0)
    timer = _clear_faults_after(fresh_srv, 0.3)
    c = _make(kind, fresh_srv, max_retry_seconds=20)
    started = time.monotonic()
    try:
        org = await resolve(c.organization.get())
    finally:
        timer.cancel()
        await _close(c)
    elapsed = time.monotonic() - started
    assert org.organization_id
    assert elapsed >= 1.0  # waited the advised Retry-After
    assert log_count(fresh_srv, "GET", "/v1/organizations") >= 2


async def test_create_retried_on_429(kind, fresh_srv):
    fresh_srv.update_settings(fault_rate_429=1.0, retry_after_seconds=0.5)
    timer = _clear_faults_after(fresh_srv, 0.2)
    c = _make(kind, fresh_srv, max_retry_seconds=20)
    name = uid("ns")
    try:
        ns = await resolve(c.namespaces.create(name, [{"feature_extractor_name": "text_extractor", "version": "v1"}]))
    finally:
        timer.cancel()
        await _close(c)
    assert ns.namespace_name == name
    assert log_count(fresh_srv, "POST", "/v1/namespaces") >= 2


async def test_retries_bounded_by_budget(kind, fresh_srv):
    fresh_srv.update_settings(fault_rate_503=1.0, retry_after_seconds=0.4)
    c = _make(kind, fresh_srv, max_retry_seconds=2)
    started = time.monotonic()
    try:
        with pytest.raises(errors.ServerError):
            await resolve(c.organization.get())
    finally:
        await _close(c)
    elapsed = time.monotonic() - started
    assert 0.8 <= elapsed <= 3.0
    assert 2 <= log_count(fresh_srv, "GET", "/v1/organizations") <= 6


async def test_creates_retried_on_503_only_when_safe(kind, fresh_srv):
    """Creates a repeat cannot duplicate (unique names, file_hash + skip_duplicates) are retried
    on 503 within the one budget; an upload without a hash (a repeat could orphan or double) is not."""
    c0 = Mixpeek(api_key=fresh_srv.api_key, base_url=fresh_srv.base_url)
    ns = uid("ns")
    c0.namespaces.create(ns, [{"feature_extractor_name": "text_extractor", "version": "v1"}])
    bucket = uid("bkt")
    c0.with_options(namespace=ns).buckets.create(bucket, SCHEMA)
    c0.close()
    fresh_srv.update_settings(fault_rate_503=1.0, retry_after_seconds=0.1)
    c = _make(kind, fresh_srv, namespace=ns, max_retry_seconds=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(errors.ServerError):
            await resolve(c.buckets.create(uid("bkt"), SCHEMA))
        with pytest.raises(errors.ServerError):
            await resolve(c.uploads.create(bucket, "a.txt", "text/plain"))
    finally:
        await _close(c)
    assert time.monotonic() - started < 5
    assert log_count(fresh_srv, "POST", "/v1/buckets") >= 1 + 3  # the setup create + retries
    assert log_count(fresh_srv, "POST", f"/v1/buckets/{bucket}/uploads") == 1


def _locals_dump(exc: BaseException) -> str:
    """The traceback below the test's own frame, with every frame's locals."""
    tb = exc.__traceback__.tb_next
    return "".join(traceback.TracebackException(type(exc), exc, tb, capture_locals=True).format())


async def test_errors_and_reprs_never_contain_the_key(kind, srv, namespace, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    c = _make(kind, srv, namespace=namespace)
    key = srv.api_key
    texts = [repr(c), str(c), repr(c.config), str(c.config)]
    try:
        for call in (lambda: c.buckets.get("missing"), lambda: c.tasks.get("missing")):
            try:
                await resolve(call())
            except errors.MixpeekError as exc:
                texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc)), _locals_dump(exc)]
        bad = c.with_options(api_key=key + "x")
        try:
            await resolve(bad.organization.get())
        except errors.AuthenticationError as exc:
            texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc)), _locals_dump(exc)]
    finally:
        await _close(c)
    texts.append(caplog.text)
    assert len(texts) > 8
    for text in texts:
        assert key not in text
        assert key[7:] not in text
