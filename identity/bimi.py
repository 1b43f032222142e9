"""BIMI logos: validation against the SVG Tiny Portable/Secure (SVG Tiny PS) profile. Pure.

Mail clients render these logos next to authenticated mail, and the portal serves them from
its own origin, so what they may contain is an allow-list, not a list of known tricks: the SVG
Tiny PS elements, each with its own attributes, presentation attributes without CSS (no style
sheets, no style attribute, no escapes, no url() other than a local #id), `use` pointing inside
the file only, no processing instructions, no DOCTYPE. Parsing goes through defusedxml.

What is stored and served is not the upload: it is re-serialised from the parsed, allowed tree
(comments, whitespace between elements and anything the allow-list does not name are gone, the
attributes sorted), so bytes nobody checked never reach a mail client.
"""

import re
from dataclasses import dataclass
from xml.etree import ElementTree
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import DefusedXMLParser

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
_PREFIXES = {XLINK_NS: "xlink", XML_NS: "xml", "http://www.w3.org/2001/xml-events": "ev"}
# xlink keeps its conventional prefix in the output. SVG is written as the default namespace by
# canonical() itself: a process-wide registration would be overridden by any library that
# registers a prefix for it (qrcode, loaded by allauth's MFA pages, registers "svg").
ElementTree.register_namespace("xlink", XLINK_NS)

_CORE = frozenset({"id", f"{{{XML_NS}}}space", f"{{{XML_NS}}}lang"})
_PAINT = frozenset({
    "color", "color-rendering", "display", "fill", "fill-opacity", "fill-rule", "opacity",
    "shape-rendering", "solid-color", "solid-opacity", "stop-color", "stop-opacity", "stroke",
    "stroke-dasharray", "stroke-dashoffset", "stroke-linecap", "stroke-linejoin",
    "stroke-miterlimit", "stroke-opacity", "stroke-width", "vector-effect", "visibility",
})
_FONT = frozenset({
    "font-family", "font-size", "font-style", "font-variant", "font-weight", "text-anchor",
    "direction", "unicode-bidi", "display-align", "line-increment", "text-rendering",
})
_GRAPHIC = _CORE | _PAINT | {"transform"}
_TEXT_ONLY = frozenset()  # no element children: only text
_DRAWING = frozenset({
    "title", "desc", "g", "defs", "path", "rect", "circle", "ellipse", "line", "polyline",
    "polygon", "linearGradient", "radialGradient", "use", "solidColor", "text",
})
# element: (allowed attributes, allowed child elements)
_ALLOWED: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "svg": (_CORE | _PAINT | _FONT | {"version", "baseProfile", "viewBox", "width", "height",
                                      "preserveAspectRatio", "x", "y"}, _DRAWING),
    "title": (_CORE, _TEXT_ONLY),
    "desc": (_CORE, _TEXT_ONLY),
    "g": (_GRAPHIC | _FONT, _DRAWING),
    "defs": (_CORE, _DRAWING),
    "path": (_GRAPHIC | {"d", "pathLength"}, frozenset()),
    "rect": (_GRAPHIC | {"x", "y", "width", "height", "rx", "ry"}, frozenset()),
    "circle": (_GRAPHIC | {"cx", "cy", "r"}, frozenset()),
    "ellipse": (_GRAPHIC | {"cx", "cy", "rx", "ry"}, frozenset()),
    "line": (_GRAPHIC | {"x1", "y1", "x2", "y2"}, frozenset()),
    "polyline": (_GRAPHIC | {"points"}, frozenset()),
    "polygon": (_GRAPHIC | {"points"}, frozenset()),
    "linearGradient": (_CORE | {"x1", "y1", "x2", "y2", "gradientUnits"}, frozenset({"stop"})),
    "radialGradient": (_CORE | {"cx", "cy", "r", "fx", "fy", "gradientUnits"},
                       frozenset({"stop"})),
    "stop": (_CORE | {"offset", "stop-color", "stop-opacity"}, frozenset()),
    "use": (_GRAPHIC | {"x", "y", f"{{{XLINK_NS}}}href", "href"}, frozenset()),
    "solidColor": (_CORE | {"solid-color", "solid-opacity"}, frozenset()),
    "text": (_GRAPHIC | _FONT | {"x", "y", "rotate"}, frozenset({"tspan"})),
    "tspan": (_CORE | _PAINT | _FONT, frozenset({"tspan"})),
}
_MIXED_CONTENT = {"title", "desc", "text", "tspan"}  # where text (and tails) are kept
_FORBIDDEN = {
    "script": "a <script> element: logos may not run code",
    "handler": "a <handler> element: logos may not run code",
    "listener": "a <listener> element: logos may not run code",
    "image": "an <image> element: raster or embedded images are not allowed",
    "foreignObject": "a <foreignObject> element: only SVG content is allowed",
    "iframe": "an <iframe> element: nothing may be embedded",
    "video": "a <video> element: no media",
    "audio": "an <audio> element: no media",
    "style": "a <style> element: style sheets are not allowed (use presentation attributes "
             'such as fill="#0a58ca")',
    "a": "an <a> element: logos may not link anywhere",
}
_ANIMATION = {"animate", "animateMotion", "animateColor", "animateTransform", "set", "discard"}
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_LOCAL_REF = re.compile(r"#([A-Za-z_][A-Za-z0-9_.-]{0,63})")
_PAINT_URL = re.compile(r"url\(#[A-Za-z_][A-Za-z0-9_.-]{0,63}\)(?:\s+[#A-Za-z0-9]+)?")
# Characters no presentation value needs and CSS-ish tricks do: escapes, at-rules, rule and
# declaration separators, schemes ("javascript:"), markup.
_UNSAFE_IN_VALUE = set("\\@;{}<>:`") | {chr(c) for c in range(32) if chr(c) not in "\t\n\r"}


class SvgRejected(ValueError):
    """The logo does not conform; `reasons` lists every problem, one plain sentence each."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class Logo:
    data: bytes  # the canonical re-serialisation, what is stored and served
    title: str
    view_box: tuple[float, float, float, float]


def validate_svg(data: bytes, *, max_bytes: int) -> Logo:
    """Return the logo, re-serialised, if it is SVG Tiny PS; else raise SvgRejected with every
    reason."""
    if not data:
        raise SvgRejected(["The file is empty."])
    if len(data) > max_bytes:
        raise SvgRejected([f"The file is {len(data)} bytes; the limit is {max_bytes} bytes."])
    root, instructions = _parse(data)
    reasons = [_instruction_problem(target) for target in instructions]
    reasons += _root_problems(root)
    title = _title(root, reasons)
    view_box = _view_box(root, reasons)
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    _element_problems(root, None, ids, reasons)
    if reasons:
        raise SvgRejected(_unique(reasons))
    return Logo(data=canonical(root), title=title, view_box=view_box)


class _Collector(ElementTree.TreeBuilder):
    """Builds the tree and notes processing instructions, which the tree itself drops."""

    def __init__(self):
        super().__init__()
        self.instructions: list[str] = []

    def pi(self, target, data=None):
        self.instructions.append(target)


def _parse(data: bytes) -> tuple[Element, list[str]]:
    collector = _Collector()
    parser = DefusedXMLParser(
        target=collector, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(data)
        return parser.close(), collector.instructions
    except DTDForbidden:
        raise SvgRejected(
            ["The file has a DOCTYPE declaration, which is not allowed: a DOCTYPE declares XML "
             "entities and external definitions that can expand without limit or fetch other "
             "files. Remove it; an SVG needs none."]
        ) from None
    except DefusedXmlException as exc:
        raise SvgRejected(
            [f"The file declares XML entities or external references ({type(exc).__name__}); "
             "they are refused because they can expand without limit or fetch other files."]
        ) from None
    except ParseError as exc:
        raise SvgRejected([f"The file is not well-formed XML: {exc}."]) from None


def _instruction_problem(target: str) -> str:
    return (
        f"The file contains a processing instruction (<?{target[:40]} …?>), which is not "
        "allowed: it can attach a style sheet or other outside content."
    )


def _local(tag) -> tuple[str, str]:
    if not isinstance(tag, str):  # comments
        return "", ""
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _shown(attribute: str) -> str:
    namespace, local = _local(attribute)
    if not namespace:
        return local
    return f"{_PREFIXES.get(namespace, '{' + namespace + '}')}:{local}"


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


def _element_problems(element: Element, parent: str | None, ids: set, reasons: list[str]):
    namespace, name = _local(element.tag)
    if not name:
        return  # a comment: dropped from what is served
    allowed = _ALLOWED.get(name) if namespace == SVG_NS else None
    if name in _FORBIDDEN:
        reasons.append(f"The logo contains {_FORBIDDEN[name]}.")
    elif name in _ANIMATION:
        reasons.append(f"The logo contains <{name}>: animation is not allowed.")
    elif namespace != SVG_NS:
        reasons.append(f"The logo contains <{name}> from another namespace ({namespace}).")
    elif allowed is None:
        reasons.append(f"The logo contains <{name}>, which SVG Tiny PS does not allow.")
    elif parent is not None and name not in _ALLOWED[parent][1]:
        reasons.append(f"<{name}> is not allowed inside <{parent}>.")
    if allowed is None:
        for child in element:  # refused as a whole; still say what else is inside it
            _element_problems(child, None, ids, reasons)
        return
    for attribute, value in element.attrib.items():
        _attribute_problems(name, attribute, value, allowed[0], ids, reasons)
    for child in element:
        _element_problems(child, name, ids, reasons)


def _attribute_problems(
    element: str, attribute: str, value: str, allowed: frozenset, ids: set, reasons: list[str]
) -> None:
    shown = _shown(attribute)
    if _local(attribute)[1].lower().startswith("on"):
        reasons.append(f"<{element}> has an event handler ({shown}): scripts are not allowed.")
    elif attribute == "style":
        reasons.append(
            f"<{element}> has a style attribute: CSS is not allowed in a BIMI logo (use "
            'presentation attributes such as fill="#0a58ca").'
        )
    elif attribute == f"{{{XML_NS}}}base":
        reasons.append(f"<{element}> has xml:base, which is not allowed: it changes where "
                       "references point.")
    elif attribute not in allowed:
        reasons.append(f"<{element}> has the attribute {shown}, which SVG Tiny PS does not "
                       f"allow on <{element}>.")
    elif _local(attribute)[1] == "href":
        _reference_problems(element, value, ids, reasons)
    elif attribute == "id" and not _ID.fullmatch(value):
        reasons.append(f"<{element}> has the id {value[:40]!r}: use letters, digits, _ . -.")
    else:
        _value_problems(element, shown, value, reasons)


def _reference_problems(element: str, value: str, ids: set, reasons: list[str]) -> None:
    match = _LOCAL_REF.fullmatch(value.strip())
    if match is None:
        reasons.append(
            f"<{element}> links to {value[:80]!r}: only references inside the file (#id) "
            "are allowed."
        )
    elif match.group(1) not in ids:
        reasons.append(f"<{element}> links to {value.strip()!r}, which is not in the file.")


def _value_problems(element: str, attribute: str, value: str, reasons: list[str]) -> None:
    unsafe = sorted(_UNSAFE_IN_VALUE.intersection(value))
    if unsafe:
        reasons.append(
            f"<{element}> {attribute}={value[:60]!r} has {', '.join(map(repr, unsafe))}, which "
            "is not allowed in a value: no CSS escapes, @-rules, ; or schemes."
        )
    elif "url(" in value.lower() and not (
        attribute in ("fill", "stroke") and _PAINT_URL.fullmatch(value.strip())
    ):
        reasons.append(
            f"<{element}> {attribute} refers to {value[:80]!r}: only url(#id) of a gradient in "
            "the file is allowed."
        )


def canonical(root: Element) -> bytes:
    """The logo re-serialised from the parsed (and already allowed) tree, deterministically."""
    tree = _clean_copy(root)
    tree.attrib = {"xmlns": SVG_NS, **tree.attrib}  # SVG elements are unprefixed (_clean_copy)
    text = ElementTree.tostring(tree, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n").encode()


def _clean_copy(element: Element) -> Element:
    namespace, name = _local(element.tag)
    # Unprefixed under the root's xmlns: ElementTree's prefix for a namespace is process-wide.
    copy = Element(name if namespace == SVG_NS else element.tag,
                   dict(sorted(element.attrib.items())))
    if name in _MIXED_CONTENT:
        copy.text = element.text.strip() if name in ("title", "desc") and element.text else (
            element.text
        )
    for child in element:
        if not _local(child.tag)[1]:
            continue  # a comment
        child_copy = _clean_copy(child)
        if name in ("text", "tspan"):
            child_copy.tail = child.tail
        copy.append(child_copy)
    return copy


def _unique(reasons: list[str]) -> list[str]:
    return list(dict.fromkeys(reasons))
