"""The documents stay short and true to the code (issue 24): the README is for users and
short; docs/ARCHITECTURE.md names every addon of the chain and only modules that exist;
every relative link resolves (anchors included); docs/options.md lists exactly the `oca_`
options the addons register; the user documents cite no issue numbers and name only models
the simulator has, so their examples run in `oca-proxy demo`.

The examples themselves run in tests/e2e/test_readme_snippets.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PKG = ROOT / "oca_addon"
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
OPTIONS = ROOT / "docs" / "options.md"
# What a user reads: the README, the guides under docs/ and the benchmark's document.
GUIDES = sorted(p for p in (ROOT / "docs").rglob("*.md") if p != ARCHITECTURE)
USER_DOCS = [README, ROOT / "bench" / "README.md", *GUIDES]
ALL_DOCS = [*USER_DOCS, ARCHITECTURE]

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _prose(text: str) -> str:
    """The text without its fenced blocks (code, trees, tables drawn as text)."""
    return FENCE.sub("", text)


def test_the_readme_is_short() -> None:
    lines = README.read_text().count("\n")
    assert lines <= 450, f"README.md has {lines} lines; move detail to docs/ or bench/README.md"


# -- docs/ARCHITECTURE.md ---------------------------------------------------------------------


def test_architecture_names_every_addon_of_the_chain() -> None:
    from oca_addon import _script

    text = ARCHITECTURE.read_text()
    names = [type(addon).__name__ for addon in _script.addons]
    missing = [n for n in names if not re.search(rf"\b{n}\b", text)]
    assert not missing, f"docs/ARCHITECTURE.md does not name the addons {missing}"
    # and draws them in the chain's order (the first picture)
    chain = FENCE.search(text)
    assert chain is not None
    found = [re.search(rf"\b{n}\(", chain.group(0)) for n in names]
    at = [m.start() if m else -1 for m in found]
    assert -1 not in at and at == sorted(at), f"the chain drawn is not {names}"


ROOT_DIRS = ("oca_addon/", "tests/", "bench/", "examples/", "docs/", "scripts/")
# A module path in backticks: `mitm/state.py`, `sse.py`, `translate/`, `static/`.
MODULE = re.compile(r"^[\w./-]*(\.py|/)$")


def _module_exists(name: str) -> bool:
    if name == "oca_addon.py" or name.startswith(ROOT_DIRS):
        return (ROOT / name).exists()
    if "/" in name.rstrip("/"):
        return (PKG / name).exists()
    if name.endswith("/"):
        return any(p.is_dir() for p in PKG.rglob(name.rstrip("/")))
    return any(PKG.rglob(name))


def _architecture_modules() -> list[str]:
    prose = _prose(ARCHITECTURE.read_text())
    spans = re.findall(r"`([^`\n]+)`", prose)
    return sorted({s for s in spans if MODULE.match(s) and not s.startswith(("/", "."))})


def _translate_tree() -> list[str]:
    """The files the translate/ tree (a fenced block) lists, as paths under oca_addon/."""
    text = ARCHITECTURE.read_text()
    block = next(
        b for b in FENCE.findall(text) if b.split("\n", 1)[1].startswith("oca_addon/translate/")
    )
    paths, stack = [], ["translate"]
    for line in block.split("\n")[2:-1]:
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.split()[0]
        del stack[depth:]
        paths.append("/".join([*stack, name]))
        if name.endswith("/"):
            stack.append(name.rstrip("/"))
    return paths


def test_architecture_names_only_modules_that_exist() -> None:
    named = _architecture_modules() + _translate_tree()
    assert len(named) > 30  # the module table is read at all
    missing = [n for n in named if not _module_exists(n)]
    assert not missing, f"docs/ARCHITECTURE.md names modules that do not exist: {missing}"


# -- links -------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6} (.+)$", _prose(path.read_text()), re.M):
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("doc", ALL_DOCS, ids=_rel)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(doc.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{_rel(doc)}: broken links {broken}"


# -- docs/options.md ---------------------------------------------------------------------------


def test_the_options_table_is_complete() -> None:
    """What the README says lists them does: `mitmdump -s oca_addon.py --options`."""
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "mitmdump"), "-s", "oca_addon.py", "--options"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    registered = set(re.findall(r"^(oca_\w+):", listed.stdout, re.M))
    assert len(registered) > 15
    documented = set(re.findall(r"^\| `(oca_\w+)` \|", OPTIONS.read_text(), re.M))
    assert documented == registered, (
        f"docs/options.md lacks {sorted(registered - documented)}, "
        f"names unknown {sorted(documented - registered)}"
    )
    assert "mitmdump -s oca_addon.py --options" in README.read_text()


# -- the user documents ------------------------------------------------------------------------


@pytest.mark.parametrize("doc", USER_DOCS, ids=_rel)
def test_user_docs_cite_no_issues(doc: Path) -> None:
    cited = re.findall(r"\bissues? #?\d+|(?<![\w&])#\d+\b", doc.read_text(), re.I)
    assert not cited, f"{_rel(doc)} cites {cited}: say what, not which issue"


@pytest.mark.parametrize("doc", USER_DOCS, ids=_rel)
def test_user_docs_name_models_the_demo_has(doc: Path) -> None:
    from oca_addon.sim.models import MODELS

    known = set(MODELS) | {"oca/x"}  # x: a placeholder
    named = {m.rstrip(".") for m in re.findall(r"(?<![\w./])oca/[a-z0-9][\w.-]*", doc.read_text())}
    assert named <= known, f"{_rel(doc)} names {sorted(named - known)}, unknown to the simulator"
