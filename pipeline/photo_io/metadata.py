"""EXIF and XMP of photos read and written: orientation, the EXIF block an output carries with Orientation reset to 1,
and the XMP packet that marks an output with its IPTC DigitalSourceType."""

from __future__ import annotations

import contextlib
import logging
import re
import struct
from xml.dom import minidom
from xml.parsers.expat import ExpatError

from PIL import Image, TiffImagePlugin

log = logging.getLogger(__name__)

CREATOR_TOOL = "Headshot Studio"

# The IPTC NewsCodes for digital source types (cv.iptc.org/newscodes/digitalsourcetype).
DIGITAL_SOURCE_TYPES = (
    "digitalCapture",
    "computationalCapture",
    "negativeFilm",
    "positiveFilm",
    "print",
    "humanEdits",
    "algorithmicallyEnhanced",
    "compositeCapture",
    "composite",
    "compositeWithTrainedAlgorithmicMedia",
    "compositeSynthetic",
    "trainedAlgorithmicMedia",
    "algorithmicMedia",
    "dataDrivenMedia",
    "digitalCreation",
    "screenCapture",
    "virtualRecording",
)

# A JPEG APP1 segment contains at most 65535 bytes, less the length field and the XMP namespace header.
_JPEG_XMP_LIMIT = 65_502

_ORIENTATION_TAG = 0x0112
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_EXIF_HEADER = b"Exif\x00\x00"


# --------------------------------------------------------------------------
# EXIF


def _as_bytes(value) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, tuple) and all(isinstance(item, int) for item in value):
        return b"".join(item.to_bytes(4 if item > 255 else 1, "big") for item in value) if value else None
    return None


def _normalized_exif(exif) -> bytes | None:
    if isinstance(exif, Image.Exif):
        exif = exif.tobytes()
    if not exif:
        return None
    if exif.startswith(_EXIF_HEADER):
        return bytes(exif)
    if exif[:4] in (b"II*\x00", b"MM\x00*"):
        return _EXIF_HEADER + bytes(exif)
    return None


def _tiff_exif(image: Image.Image) -> bytes | None:
    """Build an EXIF block from a TIFF's own tags, leaving out the strip and layout tags that belong to the file."""
    tags = image.tag_v2
    exif = Image.Exif()
    for tag in (270, 271, 272, 274, 282, 283, 296, 305, 306, 315, 33432):
        if tag in tags:
            exif[tag] = tags[tag]
    try:
        source = image.getexif()
        for ifd in (_EXIF_IFD, _GPS_IFD):
            if ifd in source:
                exif[ifd] = source.get_ifd(ifd)
    except (OSError, SyntaxError, ValueError, KeyError, struct.error) as error:
        log.warning("%s: ignoring an unreadable EXIF directory: %s", image.filename, error)
    return exif.tobytes() if len(exif) else None


def _jpeg_iptc(image: Image.Image) -> bytes | None:
    block = image.info.get("photoshop", {}).get(0x0404)
    if isinstance(block, dict):
        block = block.get("data")
    return bytes(block) if block else None


def _exif_orientation(exif: bytes | None) -> int | None:
    if not exif:
        return None
    parsed = Image.Exif()
    try:
        parsed.load(exif)
        return int(parsed.get(_ORIENTATION_TAG) or 0) or None
    except (SyntaxError, ValueError, TypeError, struct.error, OSError):
        return None


def _xmp_orientation(xmp: bytes | None) -> int | None:
    match = re.search(rb'tiff:Orientation(?:="|>)([1-8])', xmp or b"")
    return int(match.group(1)) if match else None


def _output_exif(exif: bytes | None, shape: tuple[int, ...], dpi: float | None = None) -> bytes | None:
    """Return the EXIF block with Orientation 1, the new pixel size, Software, and no thumbnail of the original.

    With `dpi`, the print resolution is set to it (pixels per inch), in a new block where the source had none.
    """
    exif = _normalized_exif(exif)
    if not exif and dpi is None:
        return None
    parsed = Image.Exif()
    try:
        if exif:
            parsed.load(exif)
        parsed[_ORIENTATION_TAG] = 1
        parsed[0x0131] = CREATOR_TOOL
        if dpi is not None:
            parsed[0x011A] = parsed[0x011B] = TiffImagePlugin.IFDRational(round(float(dpi) * 100), 100)
            parsed[0x0128] = 2  # inches
        if _EXIF_IFD in parsed:
            exif_ifd = parsed.get_ifd(_EXIF_IFD)
            if 0xA002 in exif_ifd or 0xA003 in exif_ifd:
                exif_ifd[0xA002] = int(shape[1])
                exif_ifd[0xA003] = int(shape[0])
        # Image.Exif.tobytes writes IFD0 and its sub-IFDs only, so the
        # original's thumbnail (IFD1) is left behind.
        return parsed.tobytes()
    except (SyntaxError, ValueError, TypeError, KeyError, struct.error, OSError) as error:
        log.warning("leaving out EXIF that cannot be parsed: %s", error)
        return None


def _exif_tags(exif: bytes | None) -> Image.Exif:
    parsed = Image.Exif()
    if exif:
        with contextlib.suppress(SyntaxError, ValueError, TypeError, struct.error, OSError):
            parsed.load(exif)
    return parsed


def print_resolution(info) -> float | None:
    """Return the print resolution (pixels per inch) that a photo's EXIF block gives, or None."""
    dpi = _exif_dpi(getattr(info, "exif", None))
    return round(dpi[0], 3) if dpi else None


def _exif_dpi(exif: bytes | None) -> tuple[float, float] | None:
    tags = _exif_tags(exif)
    if 282 not in tags or 283 not in tags:
        return None
    per_centimetre = tags.get(296) == 3
    factor = 2.54 if per_centimetre else 1.0
    with contextlib.suppress(TypeError, ValueError, ZeroDivisionError):
        return (float(tags[282]) * factor, float(tags[283]) * factor)
    return None


# --------------------------------------------------------------------------
# XMP

_RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XMP_NS = "http://ns.adobe.com/xap/1.0/"
_IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
_TIFF_NS = "http://ns.adobe.com/tiff/1.0/"
_DIGITAL_SOURCE_TYPE_BASE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
_XPACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_XPACKET_END = '\n<?xpacket end="w"?>'
_EMPTY_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
    f'<rdf:RDF xmlns:rdf="{_RDF_NS}"></rdf:RDF>'
    "</x:xmpmeta>"
)


def merge_xmp(packet: bytes | None, digital_source_type: str = "algorithmicallyEnhanced") -> bytes:
    """Return an XMP packet with Iptc4xmpExt:DigitalSourceType and xmp:CreatorTool set, keeping the packet's other properties.

    A tiff:Orientation in the packet is set to 1, like the EXIF one. A packet
    that is not well-formed XML is replaced by a new one.
    """
    # 1. Parse the existing packet (the xpacket wrapper is rebuilt below).
    document = None
    if packet:
        text = packet.decode("utf-8", "replace").lstrip("\ufeff")
        text = re.sub(r"<\?xpacket[^>]*\?>", "", text).strip()
        try:
            document = minidom.parseString(text.encode("utf-8"))
        except ExpatError as error:
            log.warning("replacing an XMP packet that is not well-formed: %s", error)
    if document is None or not document.getElementsByTagNameNS(_RDF_NS, "RDF"):
        document = minidom.parseString(_EMPTY_XMP)
    rdf = document.getElementsByTagNameNS(_RDF_NS, "RDF")[0]

    # 2. Remove the properties we set, wherever they are, and reset the orientation.
    ours = ((_IPTC_EXT_NS, "DigitalSourceType"), (_XMP_NS, "CreatorTool"))
    for description in rdf.getElementsByTagNameNS(_RDF_NS, "Description"):
        for namespace, name in ours:
            if description.hasAttributeNS(namespace, name):
                description.removeAttributeNS(namespace, name)
        if description.hasAttributeNS(_TIFF_NS, "Orientation"):
            description.setAttributeNS(_TIFF_NS, description.getAttributeNodeNS(_TIFF_NS, "Orientation").name, "1")
        for child in list(description.childNodes):
            if child.nodeType != child.ELEMENT_NODE:
                continue
            if (child.namespaceURI, child.localName) in ours:
                description.removeChild(child)
            elif (child.namespaceURI, child.localName) == (_TIFF_NS, "Orientation"):
                for text_node in list(child.childNodes):
                    child.removeChild(text_node)
                child.appendChild(document.createTextNode("1"))

    # 3. Add ours in a description of their own.
    description = document.createElementNS(_RDF_NS, "rdf:Description")
    description.setAttributeNS(_RDF_NS, "rdf:about", "")
    description.setAttribute("xmlns:Iptc4xmpExt", _IPTC_EXT_NS)
    description.setAttribute("xmlns:xmp", _XMP_NS)
    source_type = document.createElementNS(_IPTC_EXT_NS, "Iptc4xmpExt:DigitalSourceType")
    source_type.appendChild(document.createTextNode(_DIGITAL_SOURCE_TYPE_BASE + digital_source_type))
    creator_tool = document.createElementNS(_XMP_NS, "xmp:CreatorTool")
    creator_tool.appendChild(document.createTextNode(CREATOR_TOOL))
    description.appendChild(source_type)
    description.appendChild(creator_tool)
    rdf.appendChild(description)
    return (_XPACKET_BEGIN + document.documentElement.toxml() + _XPACKET_END).encode("utf-8")


def _shrink_xmp_for_jpeg(packet: bytes) -> bytes:
    """Drop the bulky edit history from a packet too large for one JPEG APP1 segment; keep only ours if still too large."""
    # NOTE: ExtendedXMP (the multi-segment form) is not written.
    document = minidom.parseString(re.sub(rb"<\?xpacket[^>]*\?>", b"", packet).strip())
    bulky = (
        ("http://ns.adobe.com/xap/1.0/mm/", "History"),
        ("http://ns.adobe.com/photoshop/1.0/", "DocumentAncestors"),
    )
    for namespace, name in bulky:
        for element in list(document.getElementsByTagNameNS(namespace, name)):
            element.parentNode.removeChild(element)
    for element in list(document.getElementsByTagNameNS("http://ns.adobe.com/camera-raw-settings/1.0/", "*")):
        if element.parentNode is not None:
            element.parentNode.removeChild(element)
    shrunk = (_XPACKET_BEGIN + document.documentElement.toxml() + _XPACKET_END).encode("utf-8")
    if len(shrunk) <= _JPEG_XMP_LIMIT:
        return shrunk
    log.warning("XMP packet of %d bytes does not fit a JPEG; keeping only the AI-edit marking", len(packet))
    source_type = re.search(rb"digitalsourcetype/(\w+)", packet)
    return merge_xmp(None, source_type.group(1).decode() if source_type else "algorithmicallyEnhanced")
