"""From OUT to portals and people: documents of a run, IIIF Presentation 3 manifests with text
annotations, METS and PAGE exports, page images for the web, and the `htr serve` reading room.

Modules (one job each): `documents` (which pages form which document, in which order), `images`
(size-capped JPEG derivatives under OUT/images), `manifest` (IIIF via iiif-prezi3), `mets`, `pagexml`,
`validate` (IIIF JSON schema, METS XSD), `export` (writes the files), `viewdata` (what the viewer
shows of a page), `server` (the Starlette app).
"""

MAX_SIDE = 2400  # default cap on the longer side of page images (OUT/images), pixels
