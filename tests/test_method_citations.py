"""Every citation of the method notes in the source points into the repository: it names
`docs/method.md` and a section that exists there, so a clone and the wheel's source never cite a
file or a section that is not there. In `src/` the sign § is used only for these citations."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHOD = REPO / "docs" / "method.md"
SOURCES = sorted(p for p in (REPO / "src").rglob("*") if p.suffix in (".py", ".yaml") and p.is_file())


def method_sections(text: str) -> set[str]:
    """The section numbers of docs/method.md: its numbered headings (`## 2.`, `### 2.6`), the bold
    numbered items inside a section (`**5.1 Stage I**`) and the numbered questions of §10 (10.1...)."""
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, flags=re.M))
    sections |= set(re.findall(r"\*\*(\d+\.\d+) ", text))
    questions = text.split("\n## 10.", 1)[1] if "\n## 10." in text else ""
    sections |= {f"10.{n}" for n in re.findall(r"^(\d+)\. ", questions, flags=re.M)}
    return sections


SECTIONS = method_sections(METHOD.read_text(encoding="utf-8"))


def citations() -> list[tuple[str, int, str]]:
    """(file, line, section) for every § in the source."""
    found = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found += [(str(path.relative_to(REPO)), number, s) for s in re.findall(r"§(\d+(?:\.\d+)*)", line)]
    return found


def test_the_section_reader_reads_the_notes():
    assert {"2", "2.3", "2.6", "3", "5.1", "5.3", "6.2", "8.6", "9.1", "10.15"} <= SECTIONS
    assert not {"2.9", "5.4", "11", "10.99"} & SECTIONS
    assert method_sections("## 2. A\n### 2.6 B\n- **5.1 C** x\n## 10. Q\n1. a\n2. b\n") == {
        "2", "2.6", "5.1", "10", "10.1", "10.2"}


def test_every_mention_of_the_method_notes_names_docs_method_md_and_a_section():
    bad = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"(\S*)method\.md(\s*)(§?)", text):
            prefix, _, section = match.groups()
            if not prefix.endswith("docs/") or not section:
                line = text.count("\n", 0, match.start()) + 1
                bad.append(f"{path.relative_to(REPO)}:{line}: {match.group(0)!r}")
    assert not bad, "cite the notes as `docs/method.md §N`:\n" + "\n".join(bad)


def test_every_cited_section_exists_in_docs_method_md():
    found = citations()
    assert len(found) > 30  # the source cites the notes throughout: an empty scan is a broken test
    missing = [f"{path}:{line}: §{section}" for path, line, section in found if section not in SECTIONS]
    assert not missing, "sections docs/method.md does not have:\n" + "\n".join(missing)
