"""The URL layout shared by the IIIF export, the METS export and `htr serve`.

Everything lives under one base URL and mirrors OUT, so that publishing OUT (after `htr export
iiif`) with any static web server at `base` serves what the manifests name:

    {base}/iiif/collection.json                 IIIF Collection of every document's manifest
    {base}/iiif/{doc}/manifest.json             IIIF Presentation 3 manifest of a document
    {base}/iiif/{doc}/lines/{page}.json         AnnotationPage: one annotation per line
    {base}/iiif/{doc}/words/{page}.json         AnnotationPage: one annotation per word
    {base}/images/{page}.jpg                    page image (size-capped JPEG)
    {base}/alto/{page}.xml                      the page's ALTO
    {base}/canvas/{page}                        canvas ids (not documents), as the Content Search
                                                service (htr.index.iiif) names them in its targets
    {base}/search                               IIIF Content Search 2.0 (`htr serve` only)

Path segments are percent-encoded (a page id from foreign ALTO may hold spaces).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


def _q(segment: str) -> str:
    return quote(segment, safe="")


@dataclass(frozen=True)
class Urls:
    """URLs of one published OUT; `base` has no trailing slash."""

    base: str

    @classmethod
    def at(cls, base: str) -> Urls:
        return cls(base.rstrip("/"))

    def collection(self) -> str:
        return f"{self.base}/iiif/collection.json"

    def manifest(self, doc: str) -> str:
        return f"{self.base}/iiif/{_q(doc)}/manifest.json"

    def lines(self, doc: str, page: str) -> str:
        return f"{self.base}/iiif/{_q(doc)}/lines/{_q(page)}.json"

    def words(self, doc: str, page: str) -> str:
        return f"{self.base}/iiif/{_q(doc)}/words/{_q(page)}.json"

    def image(self, page: str) -> str:
        return f"{self.base}/images/{_q(page)}.jpg"

    def alto(self, page: str) -> str:
        return f"{self.base}/alto/{_q(page)}.xml"

    def canvas(self, page: str) -> str:
        return f"{self.base}/canvas/{_q(page)}"

    def search(self) -> str:
        return f"{self.base}/search"

    def view(self, page: str) -> str:
        return f"{self.base}/view/{_q(page)}"
