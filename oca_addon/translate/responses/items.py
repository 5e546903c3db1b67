"""Responses input items -> chat messages (`items_to_messages`): message content parts, images,
files, function/custom tool calls paired with their outputs.
"""

from __future__ import annotations

import mimetypes
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from oca_addon.core.errors import RequestError
from oca_addon.translate.responses.common import (
    _CALL_TYPES,
    _NO_OUTPUT_TEXT,
    _OUTPUT_TYPES,
    _ROLES,
    _dumps,
    flat_tool_name,
)


def text_of(content: Any, where: str) -> str:
    """Plain text of a content value (system/developer/assistant messages, instructions)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError(
            f"{where}.content must be a string or an array of content parts",
            param=f"{where}.content",
        )
    texts: list[str] = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise RequestError(
                f"{where}.content[{j}] must be an object", param=f"{where}.content[{j}]"
            )
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
        elif kind == "refusal":
            text = part.get("refusal")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


def _output_text(content: Any) -> str | None:
    """text_of for the usual assistant message (a string, or output_text parts); None for
    anything else (then text_of, which also says what is wrong)."""
    if type(content) is str:
        return content
    if type(content) is not list:
        return None
    texts: list[str] = []
    for part in content:
        if type(part) is dict and part.get("type") == "output_text":
            text = part.get("text")
            if type(text) is str:
                texts.append(text)
                continue
        return None
    return "".join(texts)


def _file_part(part: dict[str, Any]) -> dict[str, Any]:
    data = part.get("file_data")
    filename = part.get("filename") if isinstance(part.get("filename"), str) else None
    if isinstance(data, str) and data:
        if not data.startswith("data:"):
            mime = (mimetypes.guess_type(filename)[0] if filename else None) or "application/pdf"
            data = f"data:{mime};base64,{data}"
        file: dict[str, Any] = {"file_data": data}
        if filename:
            file["filename"] = filename
        return {"type": "file", "file": file}
    label = filename or part.get("file_id") or part.get("file_url") or "file"
    return {
        "type": "text",
        "text": f"[file {label} not included: only inline file_data can be forwarded]",
    }


def _image_part(part: dict[str, Any]) -> dict[str, Any]:
    url = part.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    if isinstance(url, str) and url:
        return {"type": "image_url", "image_url": {"url": url}}
    label = part.get("file_id") or "image"
    return {
        "type": "text",
        "text": f"[image {label} not included: only image URLs can be forwarded]",
    }


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError(
            f"{where}.content must be a string or an array of content parts",
            param=f"{where}.content",
        )
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
            continue
        if not isinstance(part, dict):
            raise RequestError(
                f"{where}.content[{j}] must be an object", param=f"{where}.content[{j}]"
            )
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise RequestError(
                    f"{where}.content[{j}].text must be a string",
                    param=f"{where}.content[{j}].text",
                )
            parts.append({"type": "text", "text": text})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind in ("input_image", "image_url"):
            parts.append(_image_part(part))
        elif kind in ("input_file", "file"):
            inner = part.get("file")
            parts.append(_file_part(inner if kind == "file" and isinstance(inner, dict) else part))
    if not parts:
        return ""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _tool_output(item: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(text for the tool message, image parts to show in a following user message)."""
    output = item.get("output")
    if output is None:
        return "", []
    if isinstance(output, str):
        return output, []
    if isinstance(output, list):
        texts: list[str] = []
        images: list[dict[str, Any]] = []
        for part in output:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                if kind in ("input_text", "output_text", "text") and isinstance(
                    part.get("text"), str
                ):
                    texts.append(part["text"])
                elif kind in ("input_image", "image_url"):
                    image = _image_part(part)
                    if image["type"] == "image_url":
                        images.append(image)
                        texts.append("[image: shown in the next message]")
                    else:
                        texts.append(image["text"])
                elif kind in ("input_file", "file"):
                    texts.append(f"[file {part.get('filename') or part.get('file_id') or ''}]")
        return "\n".join(texts), images
    return _dumps(output), []


def _call_arguments(item: dict[str, Any], where: str) -> str:
    if item.get("type") == "custom_tool_call":
        value = item.get("input")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise RequestError(f"{where}.input must be a string", param=f"{where}.input")
        return _dumps({"input": value})
    args = item.get("arguments")
    if args is None or args == "":
        return "{}"
    if isinstance(args, str):
        return args
    if isinstance(args, dict):
        return _dumps(args)
    raise RequestError(f"{where}.arguments must be a JSON string", param=f"{where}.arguments")


class _Turn:
    __slots__ = ("calls", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[dict[str, Any]] = []


@dataclass(eq=False)
class Converted:
    """The conversion of a conversation's items, kept for its next turn (translate/memo.py):
    the points it could start again from, and what it had written by each. The messages are
    shared with later turns' requests: never changed once made."""

    marks: list[int]  # item indexes where nothing was left open (no turn, no output ahead)
    sizes: list[tuple[int, int]]  # per mark: len(messages), len(system)
    messages: list[dict[str, Any]]
    system: list[str]  # system and developer texts of the items
    used: list[str]  # call ids taken, in order
    used_at: list[int]  # the item index where each was taken
    unanswered: list[tuple[int, str]]  # (item index, call id): calls that found no output

    def resume(
        self, same: int, later_outputs: Callable[[int], Iterable[Any]]
    ) -> tuple[int, Converted] | None:
        """What a request whose first `same` items equal this one's takes from it: (the item
        it starts converting again at, the last point within them; the conversion before
        it). None when there is none, or when a call that found no output before that
        point would take one of the request's later items (`later_outputs(begin)`: the call
        ids of its outputs from item `begin` on)."""
        m = bisect_right(self.marks, same) - 1  # the last point within the equal items
        if m <= 0:
            return None
        begin = self.marks[m]
        open_calls = {cid for at, cid in self.unanswered if at < begin}
        if any(cid in open_calls for cid in later_outputs(begin)):
            return None  # that call would take its output now: start again
        n_messages, n_system = self.sizes[m]
        cut = bisect_left(self.used_at, begin)
        return begin, Converted(
            self.marks[:m],
            self.sizes[:m],
            self.messages[:n_messages],
            self.system[:n_system],
            self.used[:cut],
            self.used_at[:cut],
            [u for u in self.unanswered if u[0] < begin],
        )


def resumed(
    resume: tuple[Converted, int] | None, later_outputs: Callable[[int], Iterable[Any]]
) -> tuple[int, Converted]:
    """Where items_to_messages() starts (in either translation) and the conversion it goes
    on from: `resume`'s (Converted.resume), or item 0 and nothing."""
    kept = resume[0].resume(resume[1], later_outputs) if resume is not None else None
    return kept or (0, Converted([], [], [], [], [], [], []))


def items_to_messages(
    items: list[Any], resume: tuple[Converted, int] | None = None
) -> tuple[list[dict[str, Any]], list[str], Converted]:
    """Input items -> (chat messages, the items' system texts, what the next turn can start
    from). `resume`: an earlier request's Converted and how many leading items are equal."""
    begin, kept = resumed(resume, lambda b: map(_call_id_of, items[b:]))
    marks, sizes, messages, system = kept.marks, kept.sizes, kept.messages, kept.system
    used, used_at, unanswered = kept.used, kept.used_at, kept.unanswered

    # Where is each call's output? (call_id -> positions in `items`, in order)
    outputs: dict[str, deque[int]] = {}
    for i in range(begin, len(items)):
        item = items[i]
        if isinstance(item, dict) and item.get("type") in _OUTPUT_TYPES:
            cid = item.get("call_id")
            if isinstance(cid, str) and cid:
                outputs.setdefault(cid, deque()).append(i)

    consumed: set[int] = set()
    horizon = -1  # the furthest output a call has taken
    used_ids = set(used)
    turn: _Turn | None = None

    def use(cid: str, i: int) -> None:
        used_ids.add(cid)
        used.append(cid)
        used_at.append(i)

    def emit_tool_block(results: list[tuple[str, str, list[dict[str, Any]]]]) -> None:
        images: list[dict[str, Any]] = []
        for cid, text, extra in results:
            messages.append({"role": "tool", "tool_call_id": cid, "content": text})
            images.extend(extra)
        if images:
            intro = {"type": "text", "text": "Images returned by the tool calls above:"}
            messages.append({"role": "user", "content": [intro, *images]})

    def flush(at: int) -> None:
        nonlocal turn, horizon
        current, turn = turn, None
        if current is None:
            return
        text = "".join(current.texts)
        if not current.calls:
            if text:
                messages.append({"role": "assistant", "content": text})
            return
        messages.append({"role": "assistant", "content": text or None, "tool_calls": current.calls})
        results: list[tuple[str, str, list[dict[str, Any]]]] = []
        for call in current.calls:
            cid = call["id"]
            queue = outputs.get(cid)
            if queue:
                pos = queue.popleft()
                consumed.add(pos)
                horizon = max(horizon, pos)
                out_text, images = _tool_output(items[pos])
            else:
                unanswered.append((at, cid))
                out_text, images = _NO_OUTPUT_TEXT, []
            results.append((cid, out_text, images))
        emit_tool_block(results)

    # A Codex request holds hundreds of items: an item's path for error messages
    # ("input[12]") is only written when it is needed.
    for i in range(begin, len(items)):
        if turn is None and horizon < i and (not marks or i - marks[-1] >= _MARK_EVERY):
            marks.append(i)  # nothing open: the next turn may start here
            sizes.append((len(messages), len(system)))
        item = items[i]
        if not isinstance(item, dict):
            raise RequestError(f"input[{i}] must be an object", param=f"input[{i}]")
        kind = item.get("type")
        if kind is None or kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise RequestError(
                    f"input[{i}].role must be one of 'user', 'assistant', 'system', 'developer'",
                    param=f"input[{i}].role",
                )
            content = item.get("content")
            if role in ("system", "developer"):
                text = text_of(content, f"input[{i}]")
                if text:
                    system.append(text)
            elif role == "assistant":
                said = _output_text(content)
                text = text_of(content, f"input[{i}]") if said is None else said
                if turn is not None and turn.calls:
                    flush(i)
                if turn is None:
                    turn = _Turn()
                turn.texts.append(text)
            else:
                user_content = _user_content(content, f"input[{i}]")
                flush(i)
                messages.append({"role": "user", "content": user_content})
        elif kind in _CALL_TYPES:
            cid = item.get("call_id")
            if not isinstance(cid, str) or not cid:
                continue
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise RequestError(
                    f"input[{i}].name must be a non-empty string", param=f"input[{i}].name"
                )
            ns = item.get("namespace")
            flat = flat_tool_name(ns, name) if isinstance(ns, str) else name
            args = item.get("arguments") if kind == "function_call" else None
            if type(args) is not str or not args:  # the usual JSON text goes as it is
                args = _call_arguments(item, f"input[{i}]")
            if cid in used_ids:
                continue
            use(cid, i)
            if turn is None:
                turn = _Turn()
            turn.calls.append(
                {"id": cid, "type": "function", "function": {"name": flat, "arguments": args}}
            )
        elif kind in _OUTPUT_TYPES:
            flush(i)
            if i in consumed:
                continue
            cid = item.get("call_id")
            if not isinstance(cid, str) or not cid:
                continue
            queue = outputs.get(cid)
            if queue and i in queue:
                queue.remove(i)
            if cid in used_ids:
                continue
            use(cid, i)
            name = item.get("name") if isinstance(item.get("name"), str) else None
            ns = item.get("namespace")
            flat = flat_tool_name(ns if isinstance(ns, str) else None, name or "unknown_tool")
            args = _dumps({"input": ""}) if kind == "custom_tool_call_output" else "{}"
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": cid,
                            "type": "function",
                            "function": {"name": flat, "arguments": args},
                        }
                    ],
                }
            )
            out_text, images = _tool_output(item)
            emit_tool_block([(cid, out_text, images)])
        # reasoning items, item references and built-in tool calls are dropped
    end = len(items)
    if turn is None and horizon < end:
        marks.append(end)
        sizes.append((len(messages), len(system)))
    converted = Converted(marks, sizes, messages, system, used, used_at, unanswered)
    messages = list(messages)  # what the last flush adds is this request's only (flush() too)
    flush(end)
    return messages, system, converted


# A point to start again from every so many items at most (and always at the end, where the
# next turn goes on): resuming converts up to this many again, and the points cost memory.
_MARK_EVERY = 8


def _call_id_of(item: Any) -> Any:
    return (
        item.get("call_id")
        if isinstance(item, dict) and item.get("type") in _OUTPUT_TYPES
        else None
    )
