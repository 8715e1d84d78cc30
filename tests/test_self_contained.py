"""The repository explains itself: nothing under version control points outside it.

Why: a clone is all a user, a plugin author or the next maintainer has. A comment that cites a
document only the original authors could read ("see decision five of the reference") tells them nothing,
so what the code relies on is written down in ``docs/design/`` and cited from there. These tests read
every tracked file (generated stubs included) and fail on a citation of something a clone lacks,
and on a ``docs/design/`` page that is cited but does not exist.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
DESIGN = PurePosixPath("docs/design")

#: Citations of documents that live outside the repository: the shared directory the project was
#: started from, its source documents and numbered decisions, and the reference pages by name. The
#: character classes keep this file from matching itself.
OUTSIDE = re.compile(
    r"\.\./shared|/w[o]rk/|shared/referenc[e]|sources/\d|\bdecision \d"
    r"|oauth-secur[i]ty|\bpeers\.md|\bstyle\.md|\bDESIGN\.md|pain point \d"
)
#: A reference page's name without the ``docs/design/`` of our own page of that name (inside
#: ``docs/design/`` a bare name is a link to a sibling, checked below).
BARE_REFERENCE_PAGE = re.compile(r"(?<![\w/.-])(?:reference/)?exchanges\.md")
#: A relative path that climbs: at the start of a token, not inside a path such as ``/cb/../x``.
CLIMBING_PATH = re.compile(r"(?<![\w./%-])((?:\.\./)+[^\s\"'`)\]>,;]*)")
#: A cited design page.
DESIGN_PAGE = re.compile(r"docs/design/([\w.-]+\.md)")
#: A relative Markdown link target.
MARKDOWN_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s#]+)")


def tracked_texts() -> dict[PurePosixPath, str]:
    """Every tracked file that is text, by its path from the repository's root."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    texts = {}
    for name in filter(None, listed.decode().split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        texts[PurePosixPath(name)] = data.decode("utf-8", errors="replace")
    return texts


def numbered_lines(texts: dict[PurePosixPath, str]) -> Iterator[tuple[PurePosixPath, int, str]]:
    """Every line of every text with its path and line number, in path order."""
    for path, text in sorted(texts.items()):
        for number, line in enumerate(text.splitlines(), 1):
            yield path, number, line


def findings(pattern: re.Pattern[str], texts: dict[PurePosixPath, str], skip: PurePosixPath | None = None) -> list[str]:
    """``path:line: text`` of every line matching ``pattern``, outside ``skip`` when given."""
    return [
        f"{path}:{number}: {line.strip()}"
        for path, number, line in numbered_lines(texts)
        if (skip is None or not path.is_relative_to(skip)) and pattern.search(line)
    ]


def resolve(base: PurePosixPath, target: str) -> PurePosixPath | None:
    """``target`` relative to the directory ``base``, from the repository's root; None when it
    leaves the repository."""
    parts: list[str] = []
    for part in (*base.parts, *PurePosixPath(target).parts):
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts)


def test_no_file_cites_a_document_outside_the_repository() -> None:
    texts = tracked_texts()
    cited = findings(OUTSIDE, texts) + findings(BARE_REFERENCE_PAGE, texts, skip=DESIGN)
    assert not cited, "cite docs/design/ instead:\n" + "\n".join(cited)


def test_no_relative_path_leaves_the_repository() -> None:
    texts = tracked_texts()
    leaving = [
        f"{path}:{number}: {target}"
        for path, number, line in numbered_lines(texts)
        for target in CLIMBING_PATH.findall(line)
        if resolve(path.parent, target) is None
    ]
    assert texts, "git ls-files listed nothing"
    assert not leaving, "paths that climb out of the repository:\n" + "\n".join(leaving)


def test_every_cited_design_page_exists() -> None:
    texts = tracked_texts()
    missing = []
    for path, number, line in numbered_lines(texts):
        targets = [DESIGN / name for name in DESIGN_PAGE.findall(line)]
        if path.suffix == ".md":
            for link in MARKDOWN_LINK.findall(line):
                resolved = resolve(path.parent, link)
                if resolved is not None and resolved.is_relative_to(DESIGN):
                    targets.append(resolved)
        missing += [f"{path}:{number}: {target}" for target in targets if target not in texts]
    assert (DESIGN / "README.md") in texts, "docs/design/README.md, the index, is missing"
    assert not missing, "cited design pages that do not exist:\n" + "\n".join(missing)
