"""Render the synthetic sample pages of `sample_images/` and their ground truth.

    .venv/bin/python sample_images/make_samples.py [--out DIR] [--seed N]

Five archive-like pages (French notarial deed, letters, council register,
account book, typed letter) are drawn with free handwriting / typewriter fonts
from Debian packages, on a generated paper texture, then rotated slightly,
blurred and noised. Nothing is copied from any dataset: the texts are written
for this project.

For every page NAME it writes, in the output folder (default: this folder):

* `NAME.jpg`          the page image (RGB, JPEG quality 85);
* `NAME.gt.json`      ground truth: width, height, regions, lines (id, region_id,
                      text, baseline, polygon, words with boxes), all in pixels of
                      the rotated image;
* `gt/NAME.xml`       the same ground truth as ALTO, written with
                      `alto.writer.build_alto` / `write_alto` when that module exists.

The output is deterministic for a given seed (and font package versions).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
DEFAULT_SEED = 1850
WIDTH, HEIGHT = 1600, 2200
JPEG_QUALITY = 85
GENERATOR_VERSION = "1"

FONT_ROOT = Path("/usr/share/fonts")
# key -> (path under /usr/share/fonts, Debian package, licence)
FONTS: dict[str, tuple[str, str, str]] = {
    "joscelyn": ("opentype/joscelyn/Joscelyn-Regular.otf", "fonts-joscelyn", "OFL-1.1"),
    "dancing": ("opentype/dancingscript/DancingScript-Regular.otf", "fonts-dancingscript", "OFL-1.1"),
    "ecolier": ("truetype/ecolier-court/Ecolier-court.ttf", "fonts-ecolier-court", "OFL-1.1"),
    "dkg": ("truetype/fifthhorseman/dkg.ttf", "fonts-dkg-handwriting", "GPL-3+ / OFL-1.1"),
    "typewriter": ("truetype/gnutypewriter/GNUTypewriter.ttf", "fonts-gnutypewriter", "OFL-1.1"),
}


class MissingFont(RuntimeError):
    pass


def font_path(key: str) -> Path:
    rel, package, _ = FONTS[key]
    path = FONT_ROOT / rel
    if not path.is_file():
        raise MissingFont(f"font file {path} not found: install the Debian package with `apt-get install -y {package}`")
    return path


def check_fonts() -> None:
    missing = [FONTS[k][1] for k in FONTS if not (FONT_ROOT / FONTS[k][0]).is_file()]
    if missing:
        raise MissingFont(
            "missing font package(s): "
            + ", ".join(missing)
            + f"\n  install with: apt-get install -y {' '.join(missing)}"
        )


# --------------------------------------------------------------------------- texts
# Blocks: (region id, kind, text). kind: "p" paragraph (wrapped, first line indented),
# "l" one left-aligned line, "c" centred line, "r" right-aligned line, "gap" empty slot.


@dataclass
class PageSpec:
    name: str
    font: str
    size: int
    spacing: int  # distance between baselines (px)
    ink: tuple[int, int, int]
    paper: tuple[int, int, int]
    blocks: list[tuple[str, str, str]]
    columns: dict[str, tuple[int, int]]  # region -> (x0, x1) before rotation
    top: int = 230
    ruled: bool = False
    rule_colour: tuple[int, int, int] = (150, 160, 185)
    red_margin: int | None = None
    typed: bool = False
    fold: bool = False
    foxing: int = 0
    region_types: dict[str, str] = field(default_factory=lambda: {"r1": "MainZone"})
    margin_font_size: int | None = None
    margin_start_slot: int = 0
    stroke: int = 0  # extra pen width (px) for fonts with hairlines


PAGES: list[PageSpec] = [
    PageSpec(
        name="acte_vente_1687",
        font="joscelyn",
        size=38,
        spacing=104,
        ink=(62, 42, 26),
        paper=(226, 208, 170),
        foxing=14,
        top=250,
        columns={"r1": (540, 1470), "r2": (125, 445)},
        region_types={"r1": "MainZone", "r2": "MarginTextZone"},
        margin_font_size=28,
        margin_start_slot=1,
        blocks=[
            ("r1", "c", "Vente Morel a Garnier"),
            (
                "r1",
                "p",
                "Pardevant les notaires royaux au Chastelet de Senlis soussignez "
                "fut present Jacques Morel, laboureur demeurant en la paroisse de "
                "Chamant, lequel a vendu et transporté a perpetuité a honneste "
                "personne Nicolas Garnier, marchand tanneur audit Senlis, une piece "
                "de terre labourable de trois arpens ou environ, scize au terroir "
                "de Chamant, lieudit les Longues Rayes. Cette vente faicte "
                "moyennant deux cens quarante livres tournois receues contant. "
                "Fait et passé audit Senlis le douziesme mars mil six cens "
                "quatre vingt sept.",
            ),
            ("r2", "l", "Controllé a Senlis"),
            ("r2", "l", "le 20 mars 1687,"),
            ("r2", "l", "reçu douze sols."),
            ("r2", "l", "Duval"),
        ],
    ),
    PageSpec(
        name="lettre_rouen_1850",
        font="dancing",
        size=58,
        spacing=100,
        ink=(48, 34, 24),
        paper=(232, 220, 190),
        fold=True,
        foxing=6,
        columns={"r1": (170, 1440)},
        blocks=[
            ("r1", "r", "Rouen, le 12 mars 1850"),
            ("r1", "gap", ""),
            ("r1", "l", "Monsieur et cher cousin,"),
            (
                "r1",
                "p",
                "J'ai bien reçu votre lettre du 28 février et je m'empresse de vous "
                "répondre au sujet de la maison de la rue aux Ours. Maître Delahaye, "
                "notaire, estime qu'elle ne vaut guère plus de 4 500 francs, à cause "
                "des réparations que la toiture réclame depuis l'hiver dernier. Ma "
                "sœur Élise est d'avis de la vendre avant la Saint-Michel ; quant à "
                "moi, je préférerais attendre le retour de notre oncle, qui doit "
                "rentrer du Havre à la fin du mois.",
            ),
            (
                "r1",
                "p",
                "Veuillez me faire savoir votre sentiment, afin que nous en décidions "
                "ensemble. Les enfants se portent bien et vous embrassent.",
            ),
            ("r1", "p", "Croyez, Monsieur et cher cousin, à mes sentiments les plus affectueux."),
            ("r1", "r", "Hippolyte Vasseur"),
        ],
    ),
    PageSpec(
        name="registre_deliberations_1872",
        font="ecolier",
        size=72,
        stroke=1,
        spacing=104,
        ink=(40, 32, 30),
        paper=(234, 226, 204),
        ruled=True,
        top=260,
        columns={"r1": (160, 1450)},
        blocks=[
            ("r1", "c", "Séance du 3 février 1872"),
            (
                "r1",
                "p",
                "L'an mil huit cent soixante-douze, le trois février, à deux heures "
                "de l'après-midi, le conseil municipal de Saint-Aubin-sur-Scie s'est "
                "réuni au lieu ordinaire de ses séances, sous la présidence de "
                "M. Louis Lemaître, maire. Étaient présents : MM. Dubosc, Féron, "
                "Lecœur, Guérin, Hamel et Poulain.",
            ),
            (
                "r1",
                "p",
                "Le maire expose que la toiture de l'école des garçons a souffert "
                "des neiges de l'hiver et que le devis dressé par le sieur Auguste "
                "Leroux, charpentier, s'élève à la somme de 386 francs 40 centimes. "
                "Le conseil, après en avoir délibéré, vote ce crédit à l'unanimité.",
            ),
            (
                "r1",
                "p",
                "Lecture est ensuite donnée d'une lettre de M. le sous-préfet de "
                "Dieppe relative au recensement des chevaux ; le conseil en prend acte.",
            ),
            ("r1", "p", "Fait et délibéré en mairie les jour, mois et an que dessus."),
            ("r1", "r", "Lemaître, Dubosc, Féron, Lecœur, Hamel"),
        ],
    ),
    PageSpec(
        name="livre_comptes_1903",
        font="dkg",
        size=40,
        spacing=96,
        ink=(30, 30, 52),
        paper=(236, 230, 210),
        ruled=True,
        rule_colour=(140, 165, 190),
        red_margin=215,
        top=240,
        columns={"r1": (240, 1470)},
        blocks=[
            ("r1", "c", "Ferme des Aulnes, comptes de l'année 1903"),
            ("r1", "l", "Le 2 janvier, vendu à Caron deux génisses, reçu 310 francs."),
            ("r1", "l", "Le 9 janvier, payé au maréchal pour les fers, 14 fr. 50."),
            ("r1", "l", "Le 16 janvier, acheté 40 kilos de sel à Bréauté, 6 fr. 80."),
            ("r1", "l", "Le 30 janvier, gages de Marie Leduc, servante, 25 francs."),
            ("r1", "l", "Le 6 février, vendu 18 douzaines d'oeufs au marché, 19 fr. 80."),
            ("r1", "l", "Le 13 février, payé l'impôt foncier chez le percepteur, 72 fr. 15."),
            ("r1", "l", "Le 27 février, reçu du moulin pour 12 sacs de blé, 204 francs."),
            ("r1", "l", "Le 5 mars, réparation de la charrette par Hébert, 31 francs."),
            ("r1", "l", "Le 19 mars, vendu un veau à Lucien Dupré, reçu 95 francs."),
            ("r1", "l", "Le 2 avril, semences d'avoine et de trèfle, 48 fr. 60."),
            ("r1", "l", "Le 16 avril, journées de Jules Vimont à la haie, 9 francs."),
            ("r1", "gap", ""),
            ("r1", "l", "Total des recettes du trimestre : 628 fr. 80."),
            ("r1", "l", "Total des dépenses du trimestre : 207 fr. 05."),
        ],
    ),
    PageSpec(
        name="lettre_prefet_1934",
        font="typewriter",
        size=33,
        spacing=66,
        ink=(28, 28, 36),
        paper=(238, 234, 220),
        typed=True,
        top=220,
        columns={"r1": (190, 1450)},
        blocks=[
            ("r1", "l", "MAIRIE DE VILLENEUVE-SAINT-GEORGES"),
            ("r1", "l", "Bureau de l'Assistance"),
            ("r1", "r", "Villeneuve-Saint-Georges, le 14 novembre 1934."),
            ("r1", "gap", ""),
            ("r1", "r", "Le Maire de Villeneuve-Saint-Georges"),
            ("r1", "r", "à Monsieur le Préfet de Seine-et-Oise"),
            ("r1", "gap", ""),
            ("r1", "l", "Objet : secours à la famille Perrin."),
            ("r1", "gap", ""),
            (
                "r1",
                "p",
                "J'ai l'honneur de vous transmettre la demande de secours présentée "
                "par Mme veuve Perrin, née Germaine Boulanger, demeurant 17, rue de "
                "Paris, mère de quatre enfants en bas âge. Son mari, cheminot à la "
                "gare de triage, est décédé le 3 octobre dernier des suites d'un "
                "accident de service.",
            ),
            ("r1", "gap", ""),
            (
                "r1",
                "p",
                "Le bureau de bienfaisance lui a déjà alloué une somme de 250 francs, "
                "qui ne saurait suffire. Je vous serais obligé de bien vouloir "
                "examiner avec bienveillance l'octroi d'un secours départemental.",
            ),
            ("r1", "gap", ""),
            ("r1", "p", "Veuillez agréer, Monsieur le Préfet, l'assurance de ma haute considération."),
            ("r1", "gap", ""),
            ("r1", "r", "Le Maire, R. LEMOINE"),
        ],
    ),
]


# --------------------------------------------------------------------------- fonts


_FONT_CACHE: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}


def load_font(key: str, size: int) -> ImageFont.FreeTypeFont:
    k = (key, size)
    if k not in _FONT_CACHE:
        _FONT_CACHE[k] = ImageFont.truetype(str(font_path(key)), size)
    return _FONT_CACHE[k]


def _glyph_mask(font: ImageFont.FreeTypeFont, ch: str) -> np.ndarray:
    im = Image.new("L", (3 * font.size, 3 * font.size), 0)
    ImageDraw.Draw(im).text((font.size, 2 * font.size), ch, font=font, fill=255, anchor="ls")
    return np.asarray(im)


def check_glyphs(key: str, text: str) -> None:
    """Fail if the font has no glyph for a character of the text (it would render as a box)."""
    font = load_font(key, 40)
    notdef = _glyph_mask(font, "\ue000")
    missing = sorted({c for c in text if not c.isspace() and np.array_equal(_glyph_mask(font, c), notdef)})
    if missing:
        raise SystemExit(f"font {FONTS[key][0]} has no glyph for {''.join(missing)!r}: change the page text")


# --------------------------------------------------------------------------- layout


@dataclass
class PlacedWord:
    text: str
    box: tuple[int, int, int, int]  # before rotation, x1/y1 exclusive


@dataclass
class PlacedLine:
    region: str
    text: str
    slot: int
    x0: float
    x1: float
    base: tuple[float, float, float, float]  # y = b0 + b1*(x-x0) + amp*sin(2*pi*(x-x0)/period)
    words: list[PlacedWord]
    top: np.ndarray | None = None  # per-column envelope, set later
    bottom: np.ndarray | None = None

    def y_at(self, x: np.ndarray | float) -> np.ndarray | float:
        b0, b1, amp, period = self.base
        return b0 + b1 * (x - self.x0) + amp * np.sin(2 * np.pi * (x - self.x0) / period)


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float, indent: float) -> list[str]:
    words = text.split()
    lines: list[str] = []
    cur: list[str] = []
    for w in words:
        trial = " ".join(cur + [w])
        avail = width - (indent if not lines else 0)
        if cur and font.getlength(trial) > avail:
            lines.append(" ".join(cur))
            cur = [w]
        else:
            cur.append(w)
    if cur:
        lines.append(" ".join(cur))
    return lines


def layout(spec: PageSpec) -> list[tuple[str, str, float, str, int]]:
    """Return (region, text, x_start, align, slot) for every text line, in reading order."""
    out = []
    slots = {r: 0 for r in spec.columns}
    if spec.margin_font_size:
        for r in spec.columns:
            if r != "r1":
                slots[r] = spec.margin_start_slot
    for region, kind, text in spec.blocks:
        x0, x1 = spec.columns[region]
        size = spec.margin_font_size if region != "r1" and spec.margin_font_size else spec.size
        font = load_font(spec.font, size)
        if kind == "gap":
            slots[region] += 1
            continue
        if kind == "p":
            indent = 4 * font.getlength("n") if not spec.typed else 5 * font.getlength("n")
            for i, ln in enumerate(wrap(text, font, x1 - x0, indent)):
                out.append((region, ln, x0 + (indent if i == 0 else 0), "l", slots[region]))
                slots[region] += 1
        else:
            out.append((region, text, x0, kind, slots[region]))
            slots[region] += 1
    return out


def render_page(spec: PageSpec, seed: int):
    rng = np.random.default_rng(seed)
    check_glyphs(spec.font, " ".join(t for _, _, t in spec.blocks))
    ink = Image.new("L", (WIDTH, HEIGHT), 0)
    lines: list[PlacedLine] = []
    margin_spacing = int(spec.spacing * 0.62)

    for region, text, xs, align, slot in layout(spec):
        is_margin = region != "r1" and spec.margin_font_size
        size = spec.margin_font_size if is_margin else spec.size
        spacing = margin_spacing if is_margin else spec.spacing
        text = unicodedata.normalize("NFC", text)
        x0c, x1c = spec.columns[region]
        # handwriting wobbles: size, start, slope and a slow wave; typewriters do not
        if spec.typed:
            fsize, jitter_x, slope, amp = size, 0.0, rng.normal(0, 0.0004), 0.0
        else:
            fsize = int(round(size * rng.uniform(0.96, 1.04)))
            jitter_x = rng.normal(0, 5)
            slope = rng.normal(0, 0.004)
            amp = rng.uniform(0.5, 2.0)
        font = load_font(spec.font, fsize)
        space = font.getlength(" ")
        wlist = text.split(" ")
        gaps = [space * (1.0 if spec.typed else rng.uniform(0.9, 1.35)) for _ in wlist[:-1]]
        total = sum(font.getlength(w) for w in wlist) + sum(gaps)
        if align == "c":
            xs = (x0c + x1c - total) / 2
        elif align == "r":
            xs = x1c - total
        xs = float(xs + jitter_x)
        base_y = spec.top + slot * spacing + (rng.normal(0, 2.0) if not spec.typed else 0.0)
        pl = PlacedLine(region, text, slot, xs, xs + total, (base_y, slope, amp, rng.uniform(500, 1100)), [])
        draw = ImageDraw.Draw(ink)
        x = xs
        for i, w in enumerate(wlist):
            wl = font.getlength(w)
            xbox = [1e9, 1e9, -1e9, -1e9]
            if spec.typed:
                adv = font.getlength("M")
                for j, ch in enumerate(w):
                    cx = x + j * adv
                    cy = pl.y_at(cx) + int(rng.integers(-1, 2))
                    level = int(rng.uniform(190, 255)) if rng.random() > 0.04 else int(rng.uniform(140, 190))
                    if not ch.isspace():
                        draw.text((cx, cy), ch, font=font, fill=level, anchor="ls")
                        x0, t, r, b = font.getbbox(ch, anchor="ls")
                        xbox = [min(xbox[0], cx + x0), min(xbox[1], cy + t), max(xbox[2], cx + r), max(xbox[3], cy + b)]
                wl = adv * len(w)
            else:
                cy = pl.y_at(x + wl / 2) + rng.normal(0, 0.8)
                level = int(rng.uniform(200, 255))
                draw.text((x, cy), w, font=font, fill=level, anchor="ls", stroke_width=spec.stroke, stroke_fill=level)
                x0, t, r, b = font.getbbox(w, anchor="ls", stroke_width=spec.stroke)
                xbox = [x + x0, cy + t, x + r, cy + b]
            pl.words.append(PlacedWord(w, tuple(int(round(v)) for v in xbox)))
            x += wl + (gaps[i] if i < len(gaps) else 0)
        pl.x1 = x
        lines.append(pl)
    return ink, lines


# --------------------------------------------------------------------------- geometry

BIN = 12  # column width of the polygon envelopes (px)
MARGIN = 5  # px around the ink


def envelopes(ink: np.ndarray, lines: list[PlacedLine], spec: PageSpec) -> None:
    """Per-column top/bottom of each line's ink (inside its own band), clipped between neighbours."""
    by_region: dict[str, list[PlacedLine]] = {}
    for ln in lines:
        by_region.setdefault(ln.region, []).append(ln)
    # split fraction between two baselines: where descenders of one line stop and ascenders of the next begin
    frac = 0.40
    for region, rlines in by_region.items():
        rlines.sort(key=lambda ln: ln.slot)
        for k, ln in enumerate(rlines):
            xa = int(np.floor(min(ln.x0, min(w.box[0] for w in ln.words)))) - MARGIN
            xb = int(np.ceil(max(ln.x1, max(w.box[2] for w in ln.words)))) + MARGIN
            xs = np.arange(xa, xb + BIN, BIN, dtype=float)
            xs[-1] = min(xs[-1], xb)
            xs = np.unique(xs)
            base = np.asarray(ln.y_at(xs), dtype=float)
            prev = rlines[k - 1] if k > 0 and rlines[k - 1].slot == ln.slot - 1 else None
            nxt = rlines[k + 1] if k + 1 < len(rlines) and rlines[k + 1].slot == ln.slot + 1 else None
            sp = np.median([abs(b.y_at(xs) - base).mean() for b in (prev, nxt) if b is not None] or [spec.spacing])
            upper = base - (1 - frac) * sp if prev is None else prev.y_at(xs) + frac * (base - prev.y_at(xs))
            lower = base + frac * sp if nxt is None else base + frac * (nxt.y_at(xs) - base)
            top = np.empty_like(xs)
            bot = np.empty_like(xs)
            for i, x in enumerate(xs):
                c0 = int(max(0, x - BIN / 2))
                c1 = int(min(WIDTH, x + BIN / 2 + 1))
                r0 = int(max(0, np.floor(upper[i]) + 1))
                r1 = int(min(HEIGHT, np.ceil(lower[i])))
                col = ink[r0:r1, c0:c1].max(axis=1) > 40
                rows = np.nonzero(col)[0]
                if rows.size:
                    top[i] = r0 + rows[0] - MARGIN
                    bot[i] = r0 + rows[-1] + 1 + MARGIN
                else:
                    top[i], bot[i] = base[i] - 0.25 * sp, base[i] + 0.08 * sp
            # smooth the outline a little (max filter over neighbours) and keep it around the baseline
            top = np.minimum.reduce([top, np.roll(top, 1), np.roll(top, -1)])
            bot = np.maximum.reduce([bot, np.roll(bot, 1), np.roll(bot, -1)])
            top = np.clip(np.minimum(top, base - 0.2 * sp), upper + 1, None)
            bot = np.clip(np.maximum(bot, base + 0.06 * sp), None, lower - 1)
            ln.top = np.stack([xs, top], axis=1)
            ln.bottom = np.stack([xs, bot], axis=1)


def simplify(points: np.ndarray) -> np.ndarray:
    """Drop points collinear (within 1 px) with their neighbours."""
    keep = [0]
    for i in range(1, len(points) - 1):
        a, b, c = points[keep[-1]], points[i], points[i + 1]
        if abs(b[1] - a[1]) > 1 or abs(c[1] - b[1]) > 1:
            keep.append(i)
    keep.append(len(points) - 1)
    return points[keep]


def transform(M: np.ndarray, pts: np.ndarray) -> list[list[int]]:
    pts = np.asarray(pts, dtype=float).reshape(-1, 2)
    out = pts @ M[:, :2].T + M[:, 2]
    out = np.rint(out).astype(int)
    out[:, 0] = np.clip(out[:, 0], 0, WIDTH - 1)
    out[:, 1] = np.clip(out[:, 1], 0, HEIGHT - 1)
    return out.tolist()


def box_of(pts: list[list[int]]) -> list[int]:
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    return [min(xs), min(ys), max(xs) + 1, max(ys) + 1]


# --------------------------------------------------------------------------- paper & degradations


def smooth_noise(rng: np.random.Generator, cell: int) -> np.ndarray:
    small = rng.normal(0, 1, (HEIGHT // cell + 2, WIDTH // cell + 2)).astype(np.float32)
    big = cv2.resize(small, (WIDTH + 2 * cell, HEIGHT + 2 * cell), interpolation=cv2.INTER_CUBIC)
    return big[cell : cell + HEIGHT, cell : cell + WIDTH]


def paper(spec: PageSpec, rng: np.random.Generator) -> np.ndarray:
    base = np.array(spec.paper, dtype=np.float32)
    shade = 5.0 * smooth_noise(rng, 180) + 2.5 * smooth_noise(rng, 40) + 1.2 * smooth_noise(rng, 6)
    img = base[None, None, :] + shade[..., None] * np.array([1.0, 1.0, 1.25], dtype=np.float32)
    # fibres: short faint streaks
    fib = np.zeros((HEIGHT, WIDTH), np.float32)
    for _ in range(500):
        x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        a, ln = rng.uniform(0, np.pi), rng.uniform(6, 30)
        cv2.line(fib, (int(x), int(y)), (int(x + ln * np.cos(a)), int(y + ln * np.sin(a))), float(rng.uniform(3, 8)), 1)
    img -= cv2.GaussianBlur(fib, (0, 0), 0.8)[..., None]
    # foxing: small brown blotches
    if spec.foxing:
        fox = np.zeros((HEIGHT, WIDTH), np.float32)
        for _ in range(spec.foxing):
            cv2.circle(
                fox,
                (int(rng.uniform(0, WIDTH)), int(rng.uniform(0, HEIGHT))),
                int(rng.uniform(3, 14)),
                float(rng.uniform(0.3, 1.0)),
                -1,
            )
        fox = cv2.GaussianBlur(fox, (0, 0), 5)
        img -= fox[..., None] * np.array([18, 30, 45], dtype=np.float32)
    # aged edges
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    edge = np.minimum.reduce([xx, yy, WIDTH - 1 - xx, HEIGHT - 1 - yy])
    img -= (np.exp(-edge / 35.0) * 28)[..., None] * np.array([0.8, 1.0, 1.4], dtype=np.float32)
    if spec.fold:
        yf = HEIGHT * rng.uniform(0.47, 0.53)
        d = yy - yf - 0.01 * (xx - WIDTH / 2)
        img -= (10 * np.exp(-((d / 6) ** 2)) - 5 * np.exp(-(((d - 9) / 5) ** 2)))[..., None]
    return img


def illumination(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    lin = ((xx / WIDTH - 0.5) * np.cos(ang) + (yy / HEIGHT - 0.5) * np.sin(ang)) * rng.uniform(0.06, 0.10)
    r2 = ((xx - WIDTH * rng.uniform(0.4, 0.6)) / WIDTH) ** 2 + ((yy - HEIGHT * rng.uniform(0.4, 0.6)) / HEIGHT) ** 2
    return 1.0 + lin - 0.10 * r2


def make_page(spec: PageSpec, seed: int, out_dir: Path) -> dict:
    rng_layout = np.random.default_rng([seed, PAGES.index(spec), 1])
    rng_paper = np.random.default_rng([seed, PAGES.index(spec), 2])
    ink_img, lines = render_page(spec, int(rng_layout.integers(1 << 31)))
    ink = np.asarray(ink_img)
    envelopes(ink, lines, spec)

    rules = np.zeros((HEIGHT, WIDTH), np.float32)
    if spec.ruled:
        n = int((HEIGHT - spec.top - 120) // spec.spacing) + 1
        for k in range(-1, n):
            y = spec.top + k * spec.spacing + 3
            cv2.line(rules, (60, y), (WIDTH - 60, y), 1.0, 2)
    red = np.zeros((HEIGHT, WIDTH), np.float32)
    if spec.red_margin:
        cv2.line(red, (spec.red_margin, 60), (spec.red_margin, HEIGHT - 60), 1.0, 2)

    angle = float(rng_layout.uniform(0.4, 1.3) * rng_layout.choice([-1, 1]))
    M = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), angle, 1.0)

    def rot(a: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(a, M, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderValue=0)

    alpha = rot(ink.astype(np.float32) / 255.0)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.5)  # ink spread into the fibres
    density = np.clip(0.88 + 0.12 * smooth_noise(rng_paper, 90), 0.6, 1.0)
    alpha = np.clip(alpha * density, 0, 1)[..., None]

    img = paper(spec, rng_paper)
    if spec.ruled:
        img = (
            img * (1 - 0.22 * rot(rules)[..., None])
            + np.array(spec.rule_colour, np.float32) * 0.22 * rot(rules)[..., None]
        )
    if spec.red_margin:
        rr = rot(red)[..., None] * 0.35
        img = img * (1 - rr) + np.array([190, 70, 60], np.float32) * rr
    img = img * (1 - alpha) + np.array(spec.ink, np.float32) * alpha
    img *= illumination(rng_paper)[..., None]
    img = cv2.GaussianBlur(img, (0, 0), 0.7)
    img += rng_paper.normal(0, 3.0, (HEIGHT, WIDTH)).astype(np.float32)[..., None]
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    image_name = f"{spec.name}.jpg"
    image_path = out_dir / image_name
    Image.fromarray(img, "RGB").save(image_path, quality=JPEG_QUALITY, optimize=True)

    # ground truth, in reading order: main region first, then the margin
    regions_order = list(spec.columns)
    ordered = sorted(lines, key=lambda ln: (regions_order.index(ln.region), ln.slot))
    gt_lines = []
    for i, ln in enumerate(ordered, 1):
        xa = min(w.box[0] for w in ln.words)
        xb = max(w.box[2] for w in ln.words)
        bxs = np.linspace(xa, xb, max(2, int((xb - xa) // 250) + 2))
        baseline = np.stack([bxs, ln.y_at(bxs)], axis=1)
        top = simplify(ln.top)
        bot = simplify(ln.bottom)
        poly = np.concatenate([top, bot[::-1]])
        words = []
        for w in ln.words:
            x0, y0, x1, y1 = w.box
            corners = transform(M, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
            words.append({"text": w.text, "box": box_of(corners)})
        gt_lines.append(
            {
                "id": f"l{i:02d}",
                "region_id": ln.region,
                "text": ln.text,
                "baseline": transform(M, baseline),
                "polygon": transform(M, poly),
                "words": words,
            }
        )
    gt_regions = []
    for r in regions_order:
        pts = np.concatenate([np.concatenate([ln.top, ln.bottom]) for ln in lines if ln.region == r])
        x0, y0 = pts.min(axis=0) - 10
        x1, y1 = pts.max(axis=0) + 10
        rect = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        gt_regions.append({"id": r, "type": spec.region_types.get(r, "text"), "polygon": transform(M, rect)})

    n = len(gt_lines)
    low = max(ln.y_at(ln.x0) for ln in lines)
    if low > HEIGHT - 160:
        raise SystemExit(f"{spec.name}: text runs off the page (baseline at y={low:.0f}): shorten it")
    if not 12 <= n <= 22:
        raise SystemExit(f"{spec.name}: {n} lines, expected 12-22: adjust the text")
    return {
        "image": image_name,
        "width": WIDTH,
        "height": HEIGHT,
        "synthetic": True,
        "generator": f"sample_images/make_samples.py v{GENERATOR_VERSION} seed={seed}",
        "font": {"file": str(font_path(spec.font)), "package": FONTS[spec.font][1], "licence": FONTS[spec.font][2]},
        "rotation_deg": round(angle, 4),
        "regions": gt_regions,
        "lines": gt_lines,
    }


# --------------------------------------------------------------------------- output


def dump_json(obj: dict) -> str:
    s = json.dumps(obj, ensure_ascii=False, indent=1)
    # one point / box per line is unreadable: fold short numeric arrays
    s = re.sub(r"\[\s*(-?\d+),\s*(-?\d+)\s*\]", r"[\1, \2]", s)
    s = re.sub(r"\[\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),\s*(-?\d+)\s*\]", r"[\1, \2, \3, \4]", s)
    s = re.sub(
        r"\[\s*((?:\[-?\d+, -?\d+\],?\s*)+)\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1).strip()) + "]", s
    )
    return s + "\n"


def write_alto_gt(gt: dict, image_path: Path, xml_path: Path, seed: int) -> bool:
    """Ground-truth ALTO through the project's writer; False when `alto.writer` is not available."""
    try:
        sys.path.insert(0, str(HERE.parent))
        from alto.writer import build_alto, write_alto  # type: ignore[import-not-found]
        from htr.types import (
            Line,
            LineText,
            PageImage,
            PageRef,
            PageSegmentation,
            PageText,
            ProcessingStep,
            Region,
            Word,
        )
    except ImportError as exc:
        print(f"  (no ALTO: {exc})", file=sys.stderr)
        return False
    data = image_path.read_bytes()
    ref = PageRef(
        id=image_path.stem, source=f"sample_images/{image_path.name}", sha256=hashlib.sha256(data).hexdigest()
    )
    page = PageImage(ref=ref, path=image_path.name, width=gt["width"], height=gt["height"], dpi=None, mode="RGB")
    seg = PageSegmentation(
        width=gt["width"],
        height=gt["height"],
        regions=tuple(Region(r["id"], tuple(map(tuple, r["polygon"])), r["type"]) for r in gt["regions"]),
        lines=tuple(
            Line(ln["id"], tuple(map(tuple, ln["baseline"])), tuple(map(tuple, ln["polygon"])), ln["region_id"])
            for ln in gt["lines"]
        ),
    )
    text = PageText(
        tuple(
            LineText(ln["id"], ln["text"], 1.0, tuple(Word(w["text"], tuple(w["box"]), 1.0) for w in ln["words"]))
            for ln in gt["lines"]
        )
    )
    steps = [
        ProcessingStep(
            category="contentGeneration",
            description="synthetic page and ground truth rendered from known text and geometry",
            software="sample_images/make_samples.py",
            version=GENERATOR_VERSION,
            settings={"seed": seed, "font": gt["font"]["package"]},
            date="2025-01-01T00:00:00",
        )
    ]
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    write_alto(xml_path, build_alto(page, seg, text, steps))
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: sample_images/)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--no-alto", action="store_true", help="skip the ALTO ground truth")
    ap.add_argument("--only", nargs="*", help="page names to render (default: all)")
    args = ap.parse_args(argv)
    try:
        check_fonts()
    except MissingFont as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    alto_done = 0
    for spec in PAGES:
        if args.only and spec.name not in args.only:
            continue
        gt = make_page(spec, args.seed, args.out)
        (args.out / f"{spec.name}.gt.json").write_text(dump_json(gt), encoding="utf-8")
        if not args.no_alto:
            alto_done += write_alto_gt(gt, args.out / gt["image"], args.out / "gt" / f"{spec.name}.xml", args.seed)
        size = (args.out / gt["image"]).stat().st_size
        print(f"{gt['image']}: {len(gt['lines'])} lines, {size / 1024:.0f} KiB, rotation {gt['rotation_deg']:+.2f} deg")
    if not args.no_alto and not alto_done:
        print("note: alto.writer not available, ground truth written as JSON only", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
