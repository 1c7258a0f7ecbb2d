"""The hardened XML parser, as `htr` code has always imported it; it lives in `core.safexml` (used by `alto/` too).

It stays the only way this project parses an XML file.
"""

from core.safexml import XmlLimits, parse, parser, root_name  # noqa: F401
