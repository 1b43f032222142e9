"""BIMI logos: validation against the SVG Tiny Portable/Secure (SVG Tiny PS) profile. Pure.

Mail clients render these logos next to authenticated mail, so what they may contain is
narrow: no script, no event handlers, nothing fetched from elsewhere, no raster images, no
animation, square, titled, small. Parsing goes through defusedxml: entity declarations (billion
laughs, external entities) are refused before anything is expanded.
"""

import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
_ANIMATION = {"animate", "animateMotion", "animateColor", "animateTransform", "set", "discard"}
_FORBIDDEN = {
    "script": "a <script> element: logos may not run code",
    "image": "an <image> element: raster or embedded images are not allowed",
    "foreignObject": "a <foreignObject> element: only SVG content is allowed",
    "iframe": "an <iframe> element: nothing may be embedded",
    "video": "a <video> element: no media",
    "audio": "an <audio> element: no media",
}
_EXTERNAL_URL = re.compile(r"url\(\s*['\"]?\s*(?!#)([^)'\"]*)", re.IGNORECASE)


class SvgRejected(ValueError):
    """The logo does not conform; `reasons` lists every problem, one plain sentence each."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class Logo:
    data: bytes
    title: str
    view_box: tuple[float, float, float, float]


def validate_svg(data: bytes, *, max_bytes: int) -> Logo:
    """Return the logo if it is SVG Tiny PS; else raise SvgRejected with every reason."""
    if not data:
        raise SvgRejected(["The file is empty."])
    if len(data) > max_bytes:
        raise SvgRejected([f"The file is {len(data)} bytes; the limit is {max_bytes} bytes."])
    root = _parse(data)
    reasons = _root_problems(root)
    title = _title(root, reasons)
    view_box = _view_box(root, reasons)
    for element in root.iter():
        _element_problems(element, reasons)
    if reasons:
        raise SvgRejected(_unique(reasons))
    return Logo(data=data, title=title, view_box=view_box)


def _parse(data: bytes) -> Element:
    try:
        return fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise SvgRejected(
            [f"The file declares XML entities or external references ({type(exc).__name__}); "
             "they are refused because they can expand without limit or fetch other files."]
        ) from None
    except ParseError as exc:
        raise SvgRejected([f"The file is not well-formed XML: {exc}."]) from None


def _local(tag) -> tuple[str, str]:
    if not isinstance(tag, str):  # comments and processing instructions
        return "", ""
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _root_problems(root: Element) -> list[str]:
    reasons = []
    namespace, name = _local(root.tag)
    if name != "svg" or namespace != SVG_NS:
        reasons.append(f"The root element is <{name}>, not an <svg> in the SVG namespace.")
    if root.get("baseProfile") != "tiny-ps":
        reasons.append(
            f'The root needs baseProfile="tiny-ps" (found {root.get("baseProfile")!r}).'
        )
    if root.get("version") != "1.2":
        reasons.append(f'The root needs version="1.2" (found {root.get("version")!r}).')
    for attribute in ("x", "y"):
        if root.get(attribute) is not None:
            reasons.append(f"The root element may not have an {attribute} attribute.")
    return reasons


def _title(root: Element, reasons: list[str]) -> str:
    for child in root:
        if _local(child.tag) == (SVG_NS, "title"):
            text = "".join(child.itertext()).strip()
            if not text:
                reasons.append("The <title> is empty: it should name the brand.")
            return text
    reasons.append("The logo needs a <title> element directly inside <svg>, naming the brand.")
    return ""


def _view_box(root: Element, reasons: list[str]) -> tuple[float, float, float, float]:
    raw = root.get("viewBox")
    if raw is None:
        reasons.append("The root needs a viewBox attribute (a square one).")
        return (0.0, 0.0, 0.0, 0.0)
    try:
        x, y, width, height = (float(p) for p in re.split(r"[\s,]+", raw.strip()))
    except ValueError:
        reasons.append(f"The viewBox {raw!r} is not four numbers.")
        return (0.0, 0.0, 0.0, 0.0)
    if width <= 0 or height <= 0:
        reasons.append(f"The viewBox {raw!r} has no area.")
    elif width != height:
        reasons.append(f"The viewBox is {width:g}×{height:g}; BIMI logos must be square.")
    return (x, y, width, height)


def _element_problems(element: Element, reasons: list[str]) -> None:
    namespace, name = _local(element.tag)
    if not name:
        return
    if name in _FORBIDDEN:
        reasons.append(f"The logo contains {_FORBIDDEN[name]}.")
    elif name in _ANIMATION:
        reasons.append(f"The logo contains <{name}>: animation is not allowed.")
    elif namespace and namespace != SVG_NS:
        reasons.append(f"The logo contains <{name}> from another namespace ({namespace}).")
    for attribute, value in element.attrib.items():
        _attribute_problems(name, attribute, value, reasons)
    if name == "style" and element.text:
        _css_problems(element.text, reasons)


def _attribute_problems(element: str, attribute: str, value: str, reasons: list[str]) -> None:
    _namespace, local = _local(attribute)
    if local.lower().startswith("on"):
        reasons.append(f"<{element}> has an event handler ({local}): scripts are not allowed.")
    elif local == "href" and not value.strip().startswith("#"):
        reasons.append(
            f"<{element}> links to {value[:80]!r}: only references inside the file (#id) "
            "are allowed."
        )
    elif local == "style":
        _css_problems(value, reasons)
    elif _EXTERNAL_URL.search(value):
        reasons.append(f"<{element}> {local} refers to an outside resource: {value[:80]!r}.")


def _css_problems(css: str, reasons: list[str]) -> None:
    if "@import" in css.lower():
        reasons.append("A style sheet uses @import: nothing may be loaded from elsewhere.")
    if _EXTERNAL_URL.search(css):
        reasons.append("A style refers to an outside resource with url(…).")
    if "javascript:" in css.lower() or "expression(" in css.lower():
        reasons.append("A style contains script.")


def _unique(reasons: list[str]) -> list[str]:
    return list(dict.fromkeys(reasons))
