"""Reading a `churn report` page back in tests: its sections, the data rows of its tables, its links."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

_LINK = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


@dataclass
class PageSection:
    id: str
    text: str = ""
    charts: int = 0  # svg and img elements
    rows: list[dict[str, str]] = field(default_factory=list)  # attributes of each <tr data-...>
    notes: list[str] = field(default_factory=list)


class ReportPage(HTMLParser):
    """The sections of a report page (by id), each with its text, charts, data rows and notes."""

    def __init__(self, html: str):
        super().__init__()
        self.sections: dict[str, PageSection] = {}
        self._current: PageSection | None = None
        self._in_note = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self._current = self.sections.setdefault(a["id"], PageSection(a["id"]))
        elif self._current is None:
            return
        elif tag in ("svg", "img"):
            self._current.charts += 1
        elif tag == "tr" and any(k.startswith("data-") for k in a):
            self._current.rows.append({k.removeprefix("data-"): v for k, v in a.items()})
        elif tag == "p" and "note" in a.get("class", "").split():
            self._in_note = True
            self._current.notes.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._current = None
        elif tag == "p":
            self._in_note = False

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.text += data
            if self._in_note:
                self._current.notes[-1] += data


def external_links(html: str) -> list[str]:
    """Every src/href that would load something from outside the page (anything but `#...` and `data:`)."""
    return [v for v in _LINK.findall(html) if not (v.startswith("#") or v.startswith("data:"))]
