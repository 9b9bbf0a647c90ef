"""The README and `docs/` stand on their own in a clone: every link resolves inside the
repository, and every module, class or function they name in code spans exists, so a
rename that forgets the docs fails here rather than misleading a reader."""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [ROOT / "README.md", ROOT / "deploy" / "k8s" / "README.md", *(ROOT / "docs").glob("*.md")]
)
PACKAGES = ("ledger", "shards", "workflows", "api", "ledgerflow")

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_DOTTED = re.compile(rf"(?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, code marks and punctuation dropped,
    spaces as hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    text = _FENCE.sub("", document.read_text())
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def _resolves(name: str) -> bool:
    """Whether `name` is a module, or an attribute reachable from the longest importable
    module prefix of it."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def _other_meaning(name: str) -> bool:
    """`ledgerflow.` also starts the span attributes (`ledgerflow.transfer_id`) and file
    names (`ledgerflow.html`): such a name is the package only when it names a module of
    it."""
    package, module = name.split(".")[:2]
    return (
        package == "ledgerflow"
        and not (ROOT / "src" / package / module).exists()
        and not (ROOT / "src" / package / f"{module}.py").exists()
    )


def _broken(document: Path, target: str) -> bool:
    """Whether a link leaves the repository, names no file, or names a missing heading."""
    if target.startswith(("http://", "https://", "mailto:")):
        return False
    path_part, _, anchor = target.partition("#")
    linked = (document.parent / path_part).resolve() if path_part else document
    if not (linked.is_relative_to(ROOT) and linked.exists()):
        return True
    return bool(anchor) and linked.suffix == ".md" and anchor not in _anchors(linked)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_stays_in_the_repository_and_resolves(document: Path) -> None:
    """Relative links name files of the repository (and headings that exist); nothing
    points outside it but web addresses."""
    targets = _LINK.findall(_FENCE.sub("", document.read_text()))
    broken = [t for t in targets if _broken(document, t)]
    assert not broken, f"{document.name}: {broken}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_and_name_in_code_spans_exists(document: Path) -> None:
    """A dotted name of the project in a code span (`shards.posting.post_batch`) is a
    module, or a name in one."""
    spans = _CODE_SPAN.findall(document.read_text())
    named = {span for span in spans if _DOTTED.fullmatch(span) and not _other_meaning(span)}
    missing = sorted(name for name in named if not _resolves(name))
    assert not missing, f"{document.name} names what does not exist: {missing}"
