"""The repository's documents point only at what a reader of the repository has.

Every Markdown file tracked by git (README.md, docs/*.md, any other) may link
to web pages, or to files and headings inside the repository that exist; a
link that leaves the repository (an absolute file path, ``../`` past the
root) or names a file or heading that is not there fails. No tracked file may
point to reference material outside the repository. Paths of the repository
named in backticks (``broker/net/connection.py``) must exist too, so that a
reader of docs/ARCHITECTURE.md finds each file where it says.
"""

from __future__ import annotations

import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Top-level folders of the repository: a backticked word starting with one of
# these is a repository path and must exist.
REPO_FOLDERS = ("broker/", "client/", "native/", "tests/", "bench/", "docs/")

# Text that points to reference material users do not have: its folder, and
# the ways comments have cited it (by its name alone, with a section number,
# as the reference or protocol one, in the possessive); built from parts so
# that this file does not hold them. Cite Kafka's KIPs, protocol guide and
# classes by name instead.
PACK = "pa" + "ck"
FORBIDDEN = [
    re.compile(re.escape(".." + "/shared"), re.IGNORECASE),
    re.compile(rf"\b(?:the|reference|protocol) {PACK}\b", re.IGNORECASE),
    re.compile(rf"\b{PACK}(?:'s\b| section\b| \d)", re.IGNORECASE),
    # its protocol notes' numbered sections (riverlog's README has no numbered sections)
    re.compile(r"\bREADME " + r"section \d"),
]
# Documents of that material, named as if the reader had them (fine once the
# repository holds a file of that name).
OUTSIDE_DOCUMENTS = ["DESI" + "GN.md", "STY" + "LE.md"]

INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`+([^`\n]+?)`+")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [name for name in out.stdout.decode().split("\0") if name]


def markdown_files() -> list[str]:
    return [name for name in tracked_files() if name.endswith(".md")]


def without_code_blocks(text: str) -> str:
    return FENCE.sub("", text)


def links(text: str) -> list[str]:
    prose = without_code_blocks(text)
    prose_no_spans = CODE_SPAN.sub("", prose)
    return INLINE_LINK.findall(prose_no_spans) + REFERENCE_DEFINITION.findall(prose_no_spans)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: pathlib.Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(without_code_blocks(path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def link_problem(document: pathlib.Path, target: str) -> str | None:
    """Why a link of ``document`` is wrong, or None when it is fine."""
    if target.startswith("//") or target.startswith("file:"):
        return "points outside the repository"
    if URL_SCHEME.match(target):
        return None  # a web page (http:, https:, mailto:)
    path_part, _, fragment = target.partition("#")
    if path_part.startswith("/") or path_part.startswith("~"):
        return "is an absolute path, outside the repository"
    resolved = (document.parent / path_part).resolve() if path_part else document
    if resolved != ROOT and ROOT not in resolved.parents:
        return "resolves outside the repository"
    if not resolved.exists():
        return "names a path that does not exist in the repository"
    if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
        return f"names a heading #{fragment} that {resolved.relative_to(ROOT)} does not have"
    return None


def repo_paths_in_code_spans(text: str) -> list[str]:
    spans = CODE_SPAN.findall(without_code_blocks(text))
    return [span.strip() for span in spans if span.strip().startswith(REPO_FOLDERS) and " " not in span.strip()]


def test_there_are_documents_to_check():
    names = markdown_files()
    assert "README.md" in names
    assert "docs/ARCHITECTURE.md" in names


@pytest.mark.parametrize("name", markdown_files())
def test_links_stay_inside_the_repository_and_exist(name):
    document = ROOT / name
    problems = []
    for target in links(document.read_text(encoding="utf-8")):
        problem = link_problem(document, target)
        if problem:
            problems.append(f"{name}: link ({target}) {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", markdown_files())
def test_repository_paths_named_in_backticks_exist(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    missing = [path for path in repo_paths_in_code_spans(text) if not (ROOT / path).exists()]
    assert not missing, f"{name} names paths that do not exist: {missing}"


def test_architecture_names_the_files_it_describes():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert len(repo_paths_in_code_spans(text)) >= 40, "ARCHITECTURE.md should lead the reader to the files"


def test_no_tracked_file_points_to_material_outside_the_repository():
    offenders = []
    names = tracked_files()
    basenames = {pathlib.PurePosixPath(name).name for name in names}
    patterns = FORBIDDEN + [re.compile(rf"\b{re.escape(doc)}") for doc in OUTSIDE_DOCUMENTS if doc not in basenames]
    for name in names:
        path = ROOT / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue  # a binary file
        text = data.decode("utf-8", errors="replace")
        for pattern in patterns:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                offenders.append(f"{name}:{line}: {match.group(0)!r}")
    assert not offenders, "\n".join(offenders)
