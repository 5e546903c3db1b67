"""What every client API oca-proxy serves knows about itself: `ClientApi`.

One object per client API (apis/__init__.py keeps them by endpoint). The gateway asks the
call's API, never which API it is: how a request is prepared for OCA (`prepare`), which
translator turns OCA's stream into the client's (set on the exchange by `prepare`), how a
buffered answer is put together (`native_answer` on a native route, `chat_answer` from chat
chunks otherwise), how a stream ends in failure (`terminal_error`), which of the client's
headers go on to OCA. Adding a client API is one new module here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from oca_addon.core import sse
from oca_addon.core.errors import ApiFlavor, RequestError
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.routing import Endpoint
from oca_addon.core.streams import json_or_none
from oca_addon.translate.chat import ChatAssembler
from oca_addon.translate.memo import ConversationMemo
from oca_addon.translate.shapes import ChatChunk, ChatCompletion, is_chunk

if TYPE_CHECKING:
    from oca_addon.core.apis.local import LocalRequest
    from oca_addon.core.exchange import Exchange
    from oca_addon.translate.responses import ResponseHistory

# Client headers passed on to OCA (lower-case, as bytes: compared with the raw head).
KEPT_HEADERS = frozenset(
    {b"user-agent", b"client", b"client-version", b"client-ide", b"client-ide-version"}
)


@dataclass(frozen=True)
class Inputs:
    """What `prepare` works from besides the client's body (the common steps' results)."""

    target: str  # the OCA model
    info: dict[str, Any] | None  # its entry in OCA's model list, if listed
    effort: str | None  # the mapping's default reasoning effort
    catalog: Catalog | None
    history: ResponseHistory | None = None  # for previous_response_id
    memo: ConversationMemo | None = None  # conversations translated lately
    raw: bytes | None = None  # the bytes the body was parsed from
    # The conversation as the API's quick decoding read it (the body then holds the other
    # fields): a Claude Code or Codex turn, translated without parsing its texts.
    quick: Any = None


def chat_chunks(events: list[sse.SSEEvent]) -> Iterator[ChatChunk]:
    """The chat.completion.chunk objects of a chat stream."""
    for ev in events:
        if ev.data != "[DONE]":
            chunk = json_or_none(ev.data)
            if is_chunk(chunk):
                yield chunk


class ClientApi:
    endpoint: ClassVar[Endpoint]
    flavor: ClassVar[ApiFlavor] = "openai"  # the shape of its errors
    local: ClassVar[bool] = False  # answered by oca-proxy itself (`answer`), never sent to OCA
    needs_login: ClassVar[bool] = True  # its answer needs OCA (the model list, a call)
    takes_body: ClassVar[bool] = True  # the request carries a JSON body
    streams: ClassVar[bool] = True  # OCA answers it as an event stream (else JSON)
    local_note: ClassVar[str] = "answered by oca-proxy"  # a flow's comment when answered here

    @property
    def label(self) -> str:
        """Its name in comments, log lines and the dashboard."""
        return self.endpoint.value

    def prepare(self, ex: Exchange, body: dict[str, Any], given: Inputs) -> None:
        """Fill `ex` with OCA's request body (and the stream translator) for this call."""
        raise RequestError(f"{self.endpoint.value} is not a model call")

    def decode_quick(self, raw: bytes) -> tuple[dict[str, Any], Any] | None:
        """(the body without its conversation, the conversation) read the quick way, for an
        API that has one (translate/rawjson.py); None: parse the body whole. NotQuick, from
        here or from `prepare`, says the same."""
        return None

    def client_stream(self, body: dict[str, Any]) -> bool:
        """Whether the client asked for a stream."""
        stream = body.get("stream", False)
        if stream is None:
            return False
        if not isinstance(stream, bool):
            raise RequestError("'stream' must be true or false", param="stream")
        return stream

    def kept_headers(self, ex: Exchange) -> frozenset[bytes]:
        """The client's headers that go on to OCA."""
        return KEPT_HEADERS

    def native_answer(self, ex: Exchange, events: list[sse.SSEEvent]) -> Mapping[str, Any]:
        """A buffered answer on a native route, from OCA's own stream of this API."""
        raise NotImplementedError(self.endpoint.value)

    def chat_answer(self, ex: Exchange, chunks: Iterable[ChatChunk]) -> Mapping[str, Any]:
        """A buffered answer from chat chunks (OCA's chat stream, or an upstream adapter's)."""
        assembler = ChatAssembler()
        for chunk in chunks:
            assembler.feed(chunk)
        completion = assembler.result()
        ex.usage = completion.get("usage") or {}
        return self.from_chat(ex, completion)

    def from_chat(self, ex: Exchange, completion: ChatCompletion) -> Mapping[str, Any]:
        """One chat.completion as this API's answer."""
        raise NotImplementedError(self.endpoint.value)

    def terminal_error(self, status: int, message: str) -> bytes:
        """The event that ends a stream of this API in failure."""
        return sse.encode({"error": {"message": message, "type": "api_error", "code": str(status)}})

    def answer(self, req: LocalRequest) -> dict[str, Any]:
        """A local API's answer (`local`): oca-proxy's own, in this API's shape."""
        raise NotImplementedError(self.endpoint.value)

    def with_effort(self, body: dict[str, Any], effort: str) -> None:
        """Put a reasoning effort into a client's body of this API (a replay with another)."""
        raise RequestError("only chat, Responses and Messages calls take a reasoning effort")

    def retry_elsewhere(self, ex: Exchange) -> Exchange | None:
        """The same call on another route, for when OCA refused this one for no reason a
        changed parameter removes (None: there is none)."""
        return None
