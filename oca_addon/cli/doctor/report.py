"""The doctor's findings: the report (JSON, no secrets), its table, and what it says about
the simulator's guesses (pure).

The report holds what was measured (`measured`: the same for the same OCA, so a report
is a test fixture) and how the calls went (`calls`: statuses, times, request ids).
"""

from __future__ import annotations

import json
import time
from typing import Any

from oca_addon import __version__
from oca_addon.cli.doctor.plan import (
    API_NAMES,
    PROMPTS,
    Plan,
    Probe,
    listed_apis,
    listed_efforts,
    listed_max,
)
from oca_addon.cli.doctor.read import refusal
from oca_addon.core.modelinfo import Catalog

FORMAT = 1

# What a guess of the simulator (sim/config.py GUESSES) claims about OCA.
GUESS_CLAIMS = {
    "stream_only": "a request without stream: true is refused",
    "reject_image_detail": "chat image_url.detail is refused",
    "serves_embeddings": "/embeddings is served",
    "serves_completions": "/completions is served",
    "enforce_effort_options": "an effort the list does not name is refused",
    "rejects_unlisted_api": "an API the model's list does not name is refused",
    "unknown_model_message": 'an unknown model gets 400 "Invalid model name ..."',
}


def model_list_shape(payload: Any) -> dict[str, Any]:
    """How the model list is laid out: the wrapper, the fields of its entries."""
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        shape, entries = "data", payload["data"]
    elif isinstance(payload, list):
        shape, entries = "array", payload
    else:
        shape, entries = "other", []
    fields: dict[str, set[str]] = {"entry": set(), "litellm_params": set(), "model_info": set()}
    apis: set[str] = set()
    for e in entries:
        if not isinstance(e, dict):
            continue
        fields["entry"] |= set(e)
        for key in ("litellm_params", "model_info"):
            if isinstance(e.get(key), dict):
                fields[key] |= set(e[key])
        listed = (e.get("model_info") or {}).get("supported_api_list")
        if isinstance(listed, list):
            apis |= {a for a in listed if isinstance(a, str)}
    return {
        "shape": shape,
        "models": len(entries),
        "entry_fields": sorted(fields["entry"]),
        "litellm_params_fields": sorted(fields["litellm_params"]),
        "model_info_fields": sorted(fields["model_info"]),
        "supported_api_values": sorted(apis),
    }


def _taken(summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"taken": bool(summary.get("served")), "status": summary.get("status")}
    error = summary.get("error")
    if error:
        out["error"] = error.get("message")
    return out


def _model_report(model: str, catalog: Catalog, results: list[tuple[Probe, dict[str, Any]]]):
    entry = catalog.entries.get(model)
    listed = listed_apis(entry)
    out: dict[str, Any] = {
        "in_list": entry is not None,
        "listed": {
            "apis": (entry.info.get("supported_api_list") if entry else None),
            "efforts": listed_efforts(entry),
            "max_output_tokens": listed_max(entry),
            "is_reasoning_model": bool(entry and entry.info.get("is_reasoning_model")),
            "supports_caching": bool(entry and entry.info.get("supports_caching")),
            "supports_vision": bool(entry and entry.info.get("supports_vision")),
        },
        "apis": {},
        "efforts": {},
        "refused_params": [],
    }
    refused: list[str] = []
    for probe, summary in results:
        api = API_NAMES[probe.api]
        error = (summary.get("error") or {}).get("message")
        said = refusal(error) or {}
        for param in said.get("params", []):
            if param not in refused:
                refused.append(param)
        if probe.kind == "api":
            out["apis"][api] = {"listed": probe.api in listed, **summary}
        elif probe.kind == "non_streamed":
            out["non_streamed"] = {"api": api, **summary}
        elif probe.kind == "effort":
            assert probe.effort is not None
            out["efforts"][probe.effort] = {"listed": probe.listed, **_taken(summary)}
            if said.get("efforts") is not None:
                out["efforts_named_by_oca"] = said["efforts"]
            if summary.get("served"):
                out.setdefault("reasoning", summary.get("reasoning"))
        elif probe.kind == "output_max":
            found = {"listed": probe.limit, **_taken(summary)}
            found["real"] = probe.limit if summary.get("served") else said.get("maximum")
            out["output_max"] = found
        elif probe.kind in ("temperature", "tools"):
            out[probe.kind] = _taken(summary)
            if probe.kind == "tools" and summary.get("served"):
                out["tools"]["called"] = bool(summary.get("tool_call"))
    out["refused_params"] = refused
    out["real_efforts"] = _real_efforts(out)
    return out


def _real_efforts(model: dict[str, Any]) -> list[str] | None:
    """The efforts OCA takes, when a listed one was refused: as OCA names them, else the
    listed ones that were taken; None when the list was right (or nothing was tried)."""
    efforts: dict[str, dict[str, Any]] = model["efforts"]
    refused_listed = [e for e, r in efforts.items() if r["listed"] and not r["taken"]]
    if not refused_listed:
        return None
    named = model.get("efforts_named_by_oca")
    if isinstance(named, list):
        return named
    return [e for e, r in efforts.items() if r["taken"]]


def _verdict(values: list[bool]) -> str:
    """agrees / disagrees / mixed (per call: does OCA do what the guess says?)."""
    if not values:
        return "not measured"
    if all(values):
        return "agrees"
    return "disagrees" if not any(values) else "mixed"


def _one(found: dict[str, Any], kind: str, test: Any) -> list[bool]:
    """The verdict of one global call, if it was made."""
    return [] if found.get(kind) is None else [bool(test(found[kind]))]


def _invalid_model_name(u: dict[str, Any]) -> bool:
    message = str((u.get("error") or {}).get("message"))
    return u["status"] == 400 and "Invalid model name" in message


def guesses(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per guess of the simulator: does this OCA do what the guess claims?"""
    models = list(found["models"].values())
    says = {
        "stream_only": [not m["non_streamed"]["served"] for m in models if "non_streamed" in m],
        "reject_image_detail": _one(found, "image_detail", lambda a: not a["served"]),
        "serves_embeddings": _one(found, "embeddings", lambda a: a["status"] not in (404, 405)),
        "serves_completions": _one(found, "completions", lambda a: a["status"] not in (404, 405)),
        "enforce_effort_options": [
            not r["taken"] for m in models for r in m["efforts"].values() if not r["listed"]
        ],
        "rejects_unlisted_api": [
            not a["served"] for m in models for a in m["apis"].values() if not a["listed"]
        ],
        "unknown_model_message": _one(found, "unknown_model", _invalid_model_name),
    }
    return {
        name: {"claim": GUESS_CLAIMS[name], "oca": _verdict(values)}
        for name, values in says.items()
    }


def build(
    *,
    base_url: str,
    mode: str,
    login: dict[str, Any],
    payload: Any,
    plan: Plan,
    results: list[tuple[Probe, dict[str, Any], dict[str, Any]]],
) -> dict[str, Any]:
    """The report: `results` holds (probe, answer summary, call facts: ms, request id)."""
    catalog = Catalog.from_model_info(payload)
    measured: dict[str, Any] = {
        "login": login,
        "model_list": model_list_shape(payload),
        "models": {},
    }
    per_model: dict[str, list[tuple[Probe, dict[str, Any]]]] = {}
    for probe, summary, _ in results:
        if probe.kind in ("unknown_model", "completions", "embeddings", "image_detail"):
            measured[probe.kind] = {"model": probe.model, **summary}
        else:
            per_model.setdefault(probe.model, []).append((probe, summary))
    for model in plan.models:
        if model in per_model:
            measured["models"][model] = _model_report(model, catalog, per_model[model])
    measured["guesses"] = guesses(measured)
    report = {
        "oca_proxy_doctor": FORMAT,
        "version": __version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": mode,
        "base_url": base_url,
        "measured": measured,
        "model_list": payload,
        "calls": {
            "sent": len(results),
            "left_out": [f"{p.model} {p.label()}" for p in plan.left_out],
            "each": [
                {
                    "model": p.model,
                    "call": p.label(),
                    "kind": p.kind,
                    "path": p.path,
                    "stream": p.stream,
                    "status": s.get("status"),
                    **facts,
                }
                for p, s, facts in results
            ],
        },
    }
    return report


def scrub(report: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    """The report with no secret and no prompt left in it, anywhere (OCA's words included)."""
    text = json.dumps(report, ensure_ascii=False)
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(json.dumps(secret)[1:-1], "<redacted>")
    for prompt in PROMPTS:
        text = text.replace(prompt, "<prompt>")
    result: dict[str, Any] = json.loads(text)
    return result


# --- the table ------------------------------------------------------------------------


def _yes(value: Any) -> str:
    return "yes" if value else "NO"


def _api_cell(found: dict[str, Any] | None) -> str:
    if found is None:
        return "-"
    mark = "" if found["listed"] else "*"
    if found["served"]:
        return f"ok{mark}"
    return f"{found['status']}{mark}"


def table(report: dict[str, Any]) -> str:
    """The findings for a terminal."""
    m = report["measured"]
    lines: list[str] = []
    ml = m["model_list"]
    lines.append(
        f"Model list: {ml['models']} models, shape {ml['shape']!r}, "
        f"APIs named {', '.join(ml['supported_api_values']) or 'none'}"
    )
    login = m["login"]
    life = login.get("access_token_lifetime_s")
    lines.append(
        f"Login: access token lives {life} s; refresh token rotates: "
        f"{'yes' if login.get('refresh_rotates') else 'no'}"
    )
    header = (
        "model",
        "chat",
        "resp",
        "msgs",
        "stream",
        "reasoning at",
        "efforts",
        "out max",
        "temp",
        "tool",
    )
    rows = [header]
    for model, f in m["models"].items():
        apis = f["apis"]
        ns = f.get("non_streamed")
        efforts = f["efforts"]
        eff = " ".join(f"{e}{'' if r['taken'] else '✗'}" for e, r in efforts.items()) or "-"
        om = f.get("output_max")
        if om is None:
            out_max = "-"
        elif om["taken"]:
            out_max = f"{om['listed']} ok"
        else:
            out_max = f"{om['listed']}→{om.get('real') or '?'}"
        reasoning = f.get("reasoning") or next(
            (a.get("reasoning") for a in apis.values() if a.get("reasoning")), None
        )
        rows.append(
            (
                model,
                _api_cell(apis.get("chat")),
                _api_cell(apis.get("responses")),
                _api_cell(apis.get("messages")),
                "-" if ns is None else ("both" if ns["served"] else "only"),
                ",".join(reasoning) if reasoning else "-",
                eff,
                out_max,
                "-" if "temperature" not in f else _yes(f["temperature"]["taken"]),
                "-" if "tools" not in f else _yes(f["tools"]["taken"]),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("(* the list does not name this API; ✗ refused; a → b: listed a, takes b)")
    for m_id, f in m["models"].items():
        if f["refused_params"]:
            lines.append(f"{m_id} refuses: {', '.join(f['refused_params'])}")
        for api, a in f["apis"].items():
            if a.get("usage_fields"):
                lines.append(f"{m_id} {api} usage: {', '.join(a['usage_fields'])}")
    for kind in ("completions", "embeddings"):
        if m.get(kind):
            a = m[kind]
            served = "not served" if a["status"] in (404, 405) else "served"
            lines.append(f"/{kind}: {served} (HTTP {a['status']} for {a['model']})")
    if m.get("unknown_model"):
        u = m["unknown_model"]
        err = u.get("error") or {}
        lines.append(
            f"Unknown model: HTTP {u['status']}, {err.get('shape')} shape: {err.get('message')}"
        )
    lines.append("The simulator's guesses against this OCA:")
    for name, g in m["guesses"].items():
        lines.append(f"  {name:<24} {g['oca']:<13} ({g['claim']})")
    return "\n".join(lines)


# --- the simulator as a report measured it ------------------------------------------------


def sim_settings(report: dict[str, Any]) -> dict[str, Any]:
    """SimConfig changes (`/__sim/config` keys) that make the simulator behave as measured:
    the model list as served, what each model refuses, the guesses OCA agrees with."""
    m = report["measured"]
    refusals: dict[str, dict[str, Any]] = {}
    for model, f in m["models"].items():
        spec: dict[str, Any] = {}
        if f["refused_params"]:
            spec["params"] = list(f["refused_params"])
        if f.get("real_efforts") is not None:
            spec["efforts"] = list(f["real_efforts"])
        om = f.get("output_max")
        if om and not om["taken"] and isinstance(om.get("real"), int):
            spec["max_output_tokens"] = om["real"]
        if spec:
            refusals[model] = spec
    on = [n for n, g in m["guesses"].items() if g["oca"] in ("agrees", "mixed")]
    off = {n for n, g in m["guesses"].items() if g["oca"] == "disagrees"}
    settings: dict[str, Any] = {
        "model_info": report["model_list"],
        "refusals": refusals,
        "guesses_on": on,
        "guesses_off": sorted(off),
    }
    reasoning = {
        r
        for f in m["models"].values()
        for a in f["apis"].values()
        for r in a.get("reasoning") or []
    }
    if "delta.thinking" in reasoning and "delta.reasoning_content" not in reasoning:
        settings["reasoning_field"] = "thinking"
    shape = ((m.get("unknown_model") or {}).get("error") or {}).get("shape")
    if shape == "oci":
        settings["error_shape"] = "oci"
    login = m.get("login") or {}
    if isinstance(login.get("access_token_lifetime_s"), int | float):
        settings["token_ttl"] = float(login["access_token_lifetime_s"])
    if isinstance(login.get("refresh_rotates"), bool):
        settings["rotate_refresh_tokens"] = login["refresh_rotates"]
    return settings
