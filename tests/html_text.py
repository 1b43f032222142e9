"""What a person reading a page sees: its text, without markup, scripts or styles."""

import re
from html.parser import HTMLParser


class _Text(HTMLParser):
    _hidden = {"script", "style", "template"}

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._hidden:
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in self._hidden and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: bytes | str) -> str:
    """The page's text with runs of whitespace collapsed to one space (entities decoded)."""
    parser = _Text()
    parser.feed(html.decode() if isinstance(html, bytes) else html)
    return re.sub(r"\s+", " ", " ".join(parser.parts)).strip()


def section_text(html: bytes | str, heading_id: str) -> str:
    """The visible text of the <section> labelled by the heading with id `heading_id`."""
    html = html.decode() if isinstance(html, bytes) else html
    match = re.search(
        rf'<section[^>]*aria-labelledby="{re.escape(heading_id)}"[^>]*>(.*?)</section>',
        html,
        re.S,
    )
    assert match, f"no section labelled {heading_id}"
    return visible_text(match.group(1))
