"""The OmniEmbed methods registered with bytes in and bytes out, parsed and serialised here: a request that
does not parse is INVALID_ARGUMENT naming the message type, where gRPC's generated registration answers
INTERNAL (a client's mistake is not the server's fault).

Parsing stays on the event loop. Moving large messages to the work pool was measured and made things worse
(bench/serve_latency.py, one client sending 10 MB texts: small-query p99 19 -> 45 ms): protobuf holds the GIL
while it parses, so a pool thread parsing blocks the loop just the same, with a thread hop and more copies on
top.
"""

from __future__ import annotations

import contextvars

import grpc
from google.protobuf.message import DecodeError

from .stubs import SERVICE_NAME, pb2
from .textcut import TextTooLong, check_tails, cut_texts, spec_for

# Bytes of the message being handled (a unary request, or the stream's latest message), for the servicer's
# size decisions: a message's ByteSize() serialises it again (6.7 ms for a 10 MB text, on the event loop).
message_bytes: contextvars.ContextVar[int | None] = contextvars.ContextVar("message_bytes", default=None)


class Wire:
    def __init__(self, servicer, text_limit: int = 1 << 20):
        """text_limit: bytes of a text field kept before parsing (textcut.py); at least what the model reads."""
        self.servicer = servicer
        self.text_limit = text_limit
        self._specs: dict[type, dict] = {}

    async def parse(self, cls, raw: bytes, context, where: str = "request"):
        message_bytes.set(len(raw))  # each handler runs in a task of its own: this call's value alone
        spec = self._specs.get(cls)
        if spec is None:
            spec = self._specs[cls] = spec_for(cls.DESCRIPTOR)
        raw, tails = cut_texts(raw, spec, self.text_limit)
        try:
            message = cls.FromString(raw)
            await check_tails(tails)
            return message
        except (DecodeError, TextTooLong) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{where} is not a valid {cls.__name__}: {exc}")

    async def serialize(self, reply) -> bytes:
        return reply.SerializeToString()

    def _unary(self, method, cls):
        async def handle(raw, context):
            request = await self.parse(cls, raw, context)
            return await self.serialize(await method(request, context))

        return handle

    def _parsed(self, raw_iterator, cls, context):
        async def parsed():
            n = 0
            async for raw in raw_iterator:
                yield await self.parse(cls, raw, context, f"message {n} of the stream")
                n += 1

        return parsed()

    def _client_stream(self, method, cls):
        async def handle(raw_iterator, context):
            return await self.serialize(await method(self._parsed(raw_iterator, cls, context), context))

        return handle

    def _server_stream(self, method, cls):
        async def handle(raw, context):
            async for reply in method(await self.parse(cls, raw, context), context):
                yield await self.serialize(reply)

        return handle

    def _bidi_stream(self, method, cls):
        async def handle(raw_iterator, context):
            async for reply in method(self._parsed(raw_iterator, cls, context), context):
                yield await self.serialize(reply)

        return handle

    def handler(self) -> grpc.GenericRpcHandler:
        handlers = {}
        for m in pb2.DESCRIPTOR.services_by_name[SERVICE_NAME.rsplit(".", 1)[1]].methods:
            cls, method = getattr(pb2, m.input_type.name), getattr(self.servicer, m.name)
            if m.client_streaming and m.server_streaming:
                handlers[m.name] = grpc.stream_stream_rpc_method_handler(self._bidi_stream(method, cls))
            elif m.client_streaming:
                handlers[m.name] = grpc.stream_unary_rpc_method_handler(self._client_stream(method, cls))
            elif m.server_streaming:
                handlers[m.name] = grpc.unary_stream_rpc_method_handler(self._server_stream(method, cls))
            else:
                handlers[m.name] = grpc.unary_unary_rpc_method_handler(self._unary(method, cls))
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
