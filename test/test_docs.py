"""The README stays a short front door, and every relative link in it and in docs/ resolves.

Links are checked the way GitHub renders them: a relative path must name an existing file (relative
to the page that links), and a `#fragment` must be the anchor of a heading in the target page.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 300  # issue 21: "under 300 lines"

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
# [text](target) where the text may hold code spans and wrap over lines; images too. A backtick
# is either alternative's, never both's: with `[^\[\]]` also taking one, a code span holding "["
# followed by n code spans and no link backtracked 2^n ways (minutes for a page of options).
_LINK = re.compile(r"\[(?:[^\[\]`]|`[^`]*`)*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _CODE_SPAN.sub(lambda m: m.group(0)[1:-1], heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    """Every heading anchor of a markdown page, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for m in _HEADING.finditer(_FENCE.sub("", page.read_text(encoding="utf-8"))):
        slug = github_anchor(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def relative_links(page: Path) -> list[str]:
    """The relative link targets of a page (outside code blocks), in order."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    targets = [m.group(1) for m in _LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def broken_links(page: Path) -> list[str]:
    """Each relative link of `page` whose file or heading anchor does not exist, with the reason."""
    problems = []
    for target in relative_links(page):
        path_part, _, fragment = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            problems.append(f"{page.name}: ({target}): no file {dest}")
            continue
        if fragment and (dest.suffix != ".md" or fragment not in anchors_of(dest)):
            problems.append(f"{page.name}: ({target}): no heading with anchor #{fragment} in "
                            f"{dest.name}")
    return problems


def doc_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_readme_is_under_300_lines() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines < README_MAX_LINES, (
        f"README.md has {lines} lines; keep it under {README_MAX_LINES} and move detail into docs/")


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    assert not broken_links(page), "\n".join(broken_links(page))


def test_every_docs_page_is_reachable_from_the_index() -> None:
    index = REPO / "docs" / "README.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for t in relative_links(index)}
    pages = {p.resolve() for p in (REPO / "docs").glob("*.md")} - {index.resolve()}
    assert pages, "docs/ has no pages"
    assert not pages - linked, f"docs/README.md does not link {sorted(p.name for p in pages - linked)}"
    readme_targets = relative_links(REPO / "README.md")
    assert "docs/README.md" in readme_targets


def test_readme_states_the_ci_command() -> None:
    """The front door's "two commands" stay true: .ci/run runs exactly `make test`."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    assert "`.ci/run` runs exactly `make test`." in readme
    ci = [ln for ln in (REPO / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.startswith("#")]
    assert ci[-1].strip() == "make test"


def test_the_checker_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    """The link check can fail: a page with one good and two bad links reports exactly the bad."""
    (tmp_path / "other.md").write_text("# Other page\n\n## In a ROS 2 workspace (Jazzy)\n\n"
                                       "## Measuring detection quality: `sense-perception eval`\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#in-a-ros-2-workspace-jazzy) "
                    "[ok too](other.md#measuring-detection-quality-sense-perception-eval) "
                    "[self](#page) [web](https://example.org/x#y)\n"
                    "[gone](missing.md) [wrong\nanchor](other.md#fleet-replay)\n"
                    "```\n[in code](nowhere.md)\n```\n")
    problems = broken_links(page)
    assert len(problems) == 2, problems
    assert "missing.md" in problems[0]
    assert "#fleet-replay" in problems[1]


def test_a_code_span_holding_a_bracket_does_not_stall_the_link_check(tmp_path):
    """A doc writing `[` in a code span, then many code spans and no link: the check took minutes
    (the pattern backtracked exponentially) and hit the run's timeout; a link after it is found."""
    page = tmp_path / "page.md"
    spans = " ".join(f"`--option-{i}`" for i in range(60))
    page.write_text(f"The pattern `[` then {spans} end ] no link.\n\n[the guide](guide.md)\n")
    assert relative_links(page) == ["guide.md"]


def test_notice_names_every_shipped_model_file() -> None:
    """Every weight, label and geometry file in sense_perception/models/ has its licence and origin in
    NOTICE (the specialist's OpenVINO IR shipped without a line of its own); the score calibration
    is the project's own."""
    notice = (REPO / "NOTICE").read_text(encoding="utf-8")
    own = {"score_calibration.json"}
    unnamed = [p.name for p in sorted((REPO / "sense_perception" / "models").iterdir())
               if p.is_file() and p.name not in own and p.name not in notice]
    assert not unnamed, f"files in sense_perception/models/ that NOTICE does not name: {unnamed}"
