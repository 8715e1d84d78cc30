"""The one HTTP client providers use to reach their upstreams.

It gives every provider the same behaviour for free: timeouts derived from the caller's deadline,
redirects never followed (a token endpoint redirecting elsewhere is not trusted, docs/design/security.md),
response bodies capped, transport failures mapped to the gateway's errors with the distinction that
matters for non-idempotent calls (whether the request could have reached the upstream), and, with
tracing on, a client span per call carrying the trace context upstream. The span is made here rather
than by OpenTelemetry's httpx instrumentation, which cost several times more per call
(benchmarks/README.md); it keeps only the method, scheme, host, port, path and status, never the
query (which may carry signed or personal parameters), headers or bodies. With metrics on, each
call's duration is recorded (``http.client.request.duration``, metrics.py) by provider, method, status
code and error type only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry import propagate, trace

from . import deadlines
from .errors import GatewayError, OutcomeUnknown, ProviderResponseInvalid, ProviderUnavailable

if TYPE_CHECKING:  # metrics.py imports the provider API, which imports this module
    from .metrics import UpstreamMeter

#: The public API (docs/plugins.md, "Public API"); anything else here may change without notice.
__all__ = [
    "MAX_CALL_SECONDS",
    "MAX_RESPONSE_BYTES",
    "UpstreamClient",
    "UpstreamResponse",
]

#: Upstream answers are small JSON documents; anything larger is refused rather than buffered.
MAX_RESPONSE_BYTES = 1 << 20
#: No single upstream call may take longer than this, whatever the caller's deadline.
MAX_CALL_SECONDS = 30.0

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True)
class UpstreamResponse:
    """A complete upstream answer, read within the size cap."""

    status_code: int
    headers: httpx.Headers
    content: bytes = field(repr=False)

    def json(self) -> Any:
        """The body as JSON; an unparseable body is the upstream's fault, not the caller's."""
        try:
            return json.loads(self.content)
        except ValueError as error:
            raise ProviderResponseInvalid(
                "the provider answered with a body that is not JSON",
                metadata={"upstream_http_status": str(self.status_code)},
            ) from error

    def retry_after(self) -> float | None:
        """The Retry-After header in seconds (delta-seconds form only), clamped to an hour."""
        value = self.headers.get("retry-after", "")
        try:
            return min(max(float(value), 0.0), 3600.0)
        except ValueError:
            return None


class UpstreamClient:
    """Sends a provider's HTTP requests with the gateway's timeouts, limits and error mapping."""

    def __init__(
        self, client: httpx.AsyncClient, provider_id: str, *, tracer: trace.Tracer | None = None, meter: UpstreamMeter | None = None
    ) -> None:
        self._client = client
        self._provider_id = provider_id
        self._tracer = tracer
        self._meter = meter

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout: float = MAX_CALL_SECONDS,
    ) -> UpstreamResponse:
        """Send one request and read the whole answer; raise a GatewayError on transport failure."""
        budget = deadlines.upstream_timeout(min(timeout, MAX_CALL_SECONDS))
        request = self._client.build_request(
            method, url, params=params, data=data, content=content, headers=headers, timeout=budget
        )
        if self._tracer is None:
            return await (self._send(request, auth) if self._meter is None else self._measured(request, auth, self._meter))
        target = request.url
        host = target.raw_host.decode("ascii")
        if ":" in host:
            host = f"[{host}]"
        path = target.raw_path.split(b"?", 1)[0].decode("ascii")
        attributes = {
            "http.request.method": request.method,
            "url.full": f"{target.scheme}://{host}{'' if target.port is None else f':{target.port}'}{path}",
        }
        # Not made the current span: nothing runs under it but the request, which carries it upstream.
        span = self._tracer.start_span(request.method, kind=trace.SpanKind.CLIENT, attributes=attributes)
        try:
            propagate.inject(request.headers, context=trace.set_span_in_context(span))
            try:
                response = await (self._send(request, auth) if self._meter is None else self._measured(request, auth, self._meter))
            except Exception as error:
                span.set_attribute("error.type", type(error).__name__)
                span.set_status(trace.StatusCode.ERROR)
                raise
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_attribute("error.type", str(response.status_code))
                span.set_status(trace.StatusCode.ERROR)
            return response
        finally:
            span.end()

    async def _measured(self, request: httpx.Request, auth: httpx.Auth | tuple[str, str] | None, meter: UpstreamMeter) -> UpstreamResponse:
        """``_send``, its duration recorded with the status code, or with the kind of failure when no
        answer came or it could not be read: the transport error's class for a mapped failure, the
        exception's own for any other (e.g. httpx's DecodingError), so no call goes uncounted."""
        started = perf_counter()
        try:
            response = await self._send(request, auth)
        except Exception as error:
            failure = error.__cause__ if isinstance(error, GatewayError) and error.__cause__ is not None else error
            meter.record(perf_counter() - started, request.method, None, type(failure).__name__)
            raise
        status = response.status_code
        meter.record(perf_counter() - started, request.method, status, str(status) if status >= 400 else None)
        return response

    async def _send(self, request: httpx.Request, auth: httpx.Auth | tuple[str, str] | None) -> UpstreamResponse:
        metadata = {"provider": self._provider_id}
        try:
            response = await self._client.send(request, auth=auth, follow_redirects=False, stream=True)
            try:
                body = await _read_capped(response)
            finally:
                await response.aclose()
        except _NOT_SENT as error:
            raise ProviderUnavailable(
                f"could not reach provider {self._provider_id}", metadata=metadata, retry_after=1.0
            ) from error
        except httpx.TransportError as error:
            raise OutcomeUnknown(
                f"provider {self._provider_id} did not answer in time; the request may have taken effect",
                metadata=metadata,
            ) from error
        return UpstreamResponse(response.status_code, response.headers, body)


async def _read_capped(response: httpx.Response) -> bytes:
    """Read the decoded body chunk by chunk, stopping as soon as it passes the cap. An answer whose
    body does not decode as its Content-Encoding says is an invalid answer, not an internal error."""
    chunks: list[bytes] = []
    size = 0
    metadata = {"upstream_http_status": str(response.status_code)}
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise ProviderResponseInvalid("the provider's answer is larger than the gateway accepts", metadata=metadata)
            chunks.append(chunk)
    except httpx.DecodingError as error:
        raise ProviderResponseInvalid(
            "the provider's answer does not decode as its Content-Encoding says", metadata=metadata
        ) from error
    return b"".join(chunks)
