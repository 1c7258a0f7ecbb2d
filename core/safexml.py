"""The one way this project reads XML files: no DTD, no entities, no network, a size cap and a depth cap.

Every XML input (ALTO/PAGE to validate, to index, to re-read with `--segmentation-from`,
ground truth to evaluate against) goes through `parse`. A refused or broken file raises
`XmlError` with a one-line reason naming the file; callers record it and go on.

Limits come from the environment: `HTR_XML_MAX_MB` (default 32: about 400 times the largest
ground-truth page here, 74 KB) and `HTR_XML_MAX_DEPTH` (default 128; ALTO and PAGE nest about
10 deep; libxml2 itself stops at 256).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError, XmlError

_ROOT_START = re.compile(rb"<[A-Za-z_:]")
_LINE_COL = re.compile(r", line \d+, column \d+$")


class XmlLimits(BaseModel):
    """Caps on one XML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: int = Field(default=32 * 2**20, ge=1024)
    max_depth: int = Field(default=128, ge=4, le=256)

    @classmethod
    def from_env(cls) -> XmlLimits:
        """Limits from HTR_XML_MAX_MB / HTR_XML_MAX_DEPTH (ConfigError on a bad value)."""
        kw: dict[str, int] = {}
        try:
            if os.environ.get("HTR_XML_MAX_MB"):
                kw["max_bytes"] = int(float(os.environ["HTR_XML_MAX_MB"]) * 2**20)
            if os.environ.get("HTR_XML_MAX_DEPTH"):
                kw["max_depth"] = int(os.environ["HTR_XML_MAX_DEPTH"])
            return cls(**kw)
        except (ValueError, ValidationError) as e:
            msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            raise ConfigError(f"invalid HTR_XML_MAX_MB / HTR_XML_MAX_DEPTH: {msg}") from None


def parser() -> etree.XMLParser:
    """An lxml parser that never loads a DTD, expands an entity or opens a URL (libxml2 limits kept)."""
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )


def _refuse(path: str, why: str) -> XmlError:
    return XmlError(f"XML refused: {why}", path=path)


def parse(path: str | Path, data: bytes | None = None, limits: XmlLimits | None = None) -> etree._ElementTree:
    """Parse one XML file (or its bytes `data`) safely; raises XmlError naming the file."""
    where = str(path)
    lim = limits or XmlLimits.from_env()
    if data is None:
        try:
            size = os.stat(path).st_size
            if size > lim.max_bytes:
                raise _refuse(
                    where, f"{size / 2**20:.1f} MB is above the {lim.max_bytes / 2**20:g} MB limit (HTR_XML_MAX_MB)"
                )
            with open(path, "rb") as fh:
                data = fh.read(lim.max_bytes + 1)
        except OSError as e:
            raise XmlError(f"cannot read: {e.strerror or e}", path=where) from None
    if len(data) > lim.max_bytes:
        raise _refuse(
            where, f"{len(data) / 2**20:.1f} MB is above the {lim.max_bytes / 2**20:g} MB limit (HTR_XML_MAX_MB)"
        )
    m = _ROOT_START.search(data)
    prolog = data[: m.start()] if m else data
    if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
        raise _refuse(where, "DOCTYPE/entity declarations are not allowed")
    try:
        doc = etree.fromstring(data, parser()).getroottree()
    except etree.XMLSyntaxError as e:
        msg = _LINE_COL.sub("", " ".join(str(e.msg or e).split()))
        if "depth" in msg.lower():
            raise _refuse(where, f"elements nested deeper than {lim.max_depth} (HTR_XML_MAX_DEPTH)") from None
        raise XmlError(f"line {e.lineno}: not well-formed XML: {msg}", path=where) from None
    except ValueError as e:  # e.g. a str with an encoding declaration
        raise XmlError(f"cannot parse: {e}", path=where) from None
    info = doc.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise _refuse(where, "DOCTYPE/entity declarations are not allowed")
    if doc.xpath("boolean(" + "/*" * (lim.max_depth + 1) + ")"):
        raise _refuse(where, f"elements nested deeper than {lim.max_depth} (HTR_XML_MAX_DEPTH)")
    return doc


def root_name(path: str | Path) -> str:
    """Local name of the root element of a (safely parsed) XML file; raises XmlError."""
    return etree.QName(parse(path).getroot()).localname
