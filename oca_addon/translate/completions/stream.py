"""Chat chunks -> `text_completion` chunks (`CompletionsStream`); `echo: true` prepends the prompt."""

from __future__ import annotations

from typing import Any

from oca_addon.core import sse
from oca_addon.core.errors import openai_error
from oca_addon.translate.completions.common import (
    CompletionsContext,
    completion_chunk,
    completion_usage,
    legacy_finish_reason,
)
from oca_addon.translate.shapes import ChatChunk, Usage


class CompletionsStream:
    """Chat chunks -> `text_completion` chunks, then `data: [DONE]`.

    It also keeps every choice's text, so `.completion` (after `finish`) is the whole answer
    as one `text_completion`, with all `n` choices (ChatAssembler keeps only choice 0).
    """

    def __init__(self, ctx: CompletionsContext) -> None:
        self.ctx = ctx
        self.completion: dict[str, Any] | None = None
        self._texts: dict[int, list[str]] = {}
        self._finish: dict[int, str] = {}
        self._usage: Usage | None = None
        self._done = False

    def _text_choice(self, index: int, text: str, out: list[bytes]) -> None:
        parts = self._texts.get(index)
        if parts is None:
            parts = self._texts[index] = []
            if self.ctx.echo:
                text = self.ctx.prompt + text
        if not text:
            return
        parts.append(text)
        choice = {"index": index, "text": text, "finish_reason": None, "logprobs": None}
        out.append(sse.encode(completion_chunk(self.ctx, [choice])))

    def feed(self, chunk: ChatChunk) -> bytes:
        if self._done or not isinstance(chunk, dict):
            return b""
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"]
            message = err.get("message") if isinstance(err, dict) else err
            return self.fail(502, str(message or "OCA reported an error"))
        out: list[bytes] = []
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                index = choice.get("index", 0)
                if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                    continue
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str) and content:
                    self._text_choice(index, content, out)
                reason = choice.get("finish_reason")
                if isinstance(reason, str) and reason and index not in self._finish:
                    if index not in self._texts:
                        self._text_choice(index, "", out)
                    self._finish[index] = legacy_finish_reason(reason)
                    done = {
                        "index": index,
                        "text": "",
                        "finish_reason": self._finish[index],
                        "logprobs": None,
                    }
                    out.append(sse.encode(completion_chunk(self.ctx, [done])))
        return b"".join(out)

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        out: list[bytes] = []
        for index in range(max(self.ctx.n, max(self._texts, default=-1) + 1)):
            if index not in self._texts:
                self._text_choice(index, "", out)
            if index not in self._finish:
                self._finish[index] = "stop"
                done = {"index": index, "text": "", "finish_reason": "stop", "logprobs": None}
                out.append(sse.encode(completion_chunk(self.ctx, [done])))
        usage = completion_usage(self._usage)
        if self.ctx.include_usage:
            out.append(sse.encode({**completion_chunk(self.ctx, []), "usage": usage}))
        out.append(sse.DONE)
        self.completion = {
            **completion_chunk(
                self.ctx,
                [
                    {
                        "index": i,
                        "text": "".join(self._texts.get(i, ())),
                        "finish_reason": self._finish.get(i, "stop"),
                        "logprobs": None,
                    }
                    for i in sorted(set(self._texts) | set(self._finish))
                ],
            ),
            "usage": usage,
        }
        return b"".join(out)

    def fail(self, status: int, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        body = openai_error(status, message or "OCA request failed")
        return sse.encode(body) + sse.DONE
