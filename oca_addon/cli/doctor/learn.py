"""What the doctor measured, into the proxy's learned facts (refusals.LearnedFacts): the
params a model refuses, the efforts and the output maximum it really takes, as OCA's own
refusals named them (read with refusals.parse_refusal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oca_addon.core.modelinfo import Catalog
from oca_addon.core.refusals import Fact, LearnedFacts, canonical, learned_facts_path


def facts(report: dict[str, Any]) -> list[tuple[str, Fact]]:
    """(model, fact) for everything the report found the model list wrong about."""
    out: list[tuple[str, Fact]] = []
    for model, found in report["measured"]["models"].items():
        for param in found.get("refused_params") or []:
            out.append((model, Fact("param", param=canonical(param))))
        efforts = found.get("real_efforts")
        if efforts:
            out.append((model, Fact("efforts", efforts=tuple(efforts))))
        om = found.get("output_max") or {}
        if not om.get("taken") and isinstance(om.get("real"), int):
            out.append((model, Fact("max_tokens", maximum=om["real"])))
    return out


def learn(report: dict[str, Any], settings_path: Path | None) -> tuple[Path, int]:
    """Write the facts to the file the proxy reads; (the file, how many were new)."""
    path = learned_facts_path(settings_path)
    found = facts(report)
    if not found:
        return path, 0
    catalog = Catalog.from_model_info(report.get("model_list"))
    learned = LearnedFacts(path)
    new = sum(learned.learn(model, fact, catalog.info(model)) for model, fact in found)
    learned.save()
    return path, new
