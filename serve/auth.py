"""Bearer-token auth: a server interceptor that checks `authorization: Bearer <token>` metadata.

Health checking and reflection stay open: load balancers and tooling probe them without credentials, and
they reveal nothing stored.
"""

from __future__ import annotations

import hmac

import grpc

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def _aborting_handler(kind: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    async def abort(_request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    # The refusing handler must have the same streaming shape as the real one.
    if kind.request_streaming and kind.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if kind.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if kind.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str):
        if not token:
            raise ValueError("an empty token would accept every caller; leave auth off instead")
        self._expected = token.encode()

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_PREFIXES):
            return handler
        values = [v for k, v in handler_call_details.invocation_metadata or () if k == "authorization"]
        if not values:
            return _aborting_handler(handler, "missing 'authorization: Bearer <token>' metadata")
        given = values[0].encode() if isinstance(values[0], str) else values[0]
        scheme, _, credentials = given.partition(b" ")
        # the scheme name is case-insensitive (RFC 7235): "bearer", "Bearer" and "BEARER" are one scheme
        if scheme.lower() != b"bearer" or not credentials:
            return _aborting_handler(handler, "authorization metadata must be 'Bearer <token>'")
        if not hmac.compare_digest(credentials.strip(), self._expected):  # constant time: no guessing by timing
            return _aborting_handler(handler, "wrong bearer token")
        return handler
