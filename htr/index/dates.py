"""Rule-based recogniser of dates as written in French archives, normalised to ISO 8601.

Forms recognised (case and accents never matter; `I` for `1` in typewritten years is accepted):
- `12 mars 1850`, `1er janvier 1900`, `le dix Juillet 1830`, `7 août, 1896`, `13 X^bre 1866`
  (`7bre`..`Xbre` = septembre..décembre), `le douze mars mil huit cent cinquante` -> `1850-03-12`;
- `mars 1850`, `An 1830 mois de Juillet` -> `1850-03`, `1830-07`;
- `15 avril` (no year) -> `--04-15` (ISO 8601 / xsd:gMonthDay form);
- `1850-03-12`, `12/03/1850`, `12.03.1850` (day first) -> `1850-03-12`;
- `mil huit cent cinquante` (French number words) -> `1850`; `en 1984`, `l'an 1850`, `année 1850` -> the year;
- French Republican calendar: `le 3 germinal an XII` -> `1804-03-24`, `1er jour complémentaire an XI`,
  `germinal an XII` -> `1804-03-22/1804-04-20` (an ISO 8601 interval: a Republican month straddles
  two Gregorian months), `l'an XII` -> `1803-09-24/1804-09-22`.

Republican dates are converted with the table of the Gregorian date of each 1 vendémiaire for
years I to XIV (the calendar's legal use, 22 September 1792 - 31 December 1805; years III, VII
and XI were sextile, i.e. had 6 complementary days); years after XIV follow Romme's rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

# --------------------------------------------------------------------------- French number words

_UNITS = {
    "zero": 0,
    "zéro": 0,
    "un": 1,
    "une": 1,
    "deux": 2,
    "trois": 3,
    "quatre": 4,
    "cinq": 5,
    "six": 6,
    "sept": 7,
    "huit": 8,
    "neuf": 9,
    "dix": 10,
    "onze": 11,
    "douze": 12,
    "treize": 13,
    "quatorze": 14,
    "quinze": 15,
    "seize": 16,
    "vingt": 20,
    "vingts": 20,
    "trente": 30,
    "quarante": 40,
    "cinquante": 50,
    "soixante": 60,
}
_NUMBER_WORDS = sorted(set(_UNITS) | {"et", "cent", "cents", "mil", "mille"}, key=len, reverse=True)


def number_from_words(text: str) -> int | None:
    """Value of a French number written in words (`mil huit cent cinquante` -> 1850,
    `quatre-vingt-dix-neuf` -> 99, `dix-huit cent deux` -> 1802); None if a word is not a number word."""
    words = [w for w in re.split(r"[\s\-]+", text.lower().replace("zéro", "zero")) if w]
    if not words:
        return None
    total = current = 0
    seen = False
    for w in words:
        if w == "et":
            continue
        if w in ("vingt", "vingts") and current % 100 == 4:  # quatre-vingt(s)
            current += 76
        elif w in _UNITS:
            current += _UNITS[w]
        elif w in ("cent", "cents"):
            current = (current or 1) * 100 if current < 100 else current * 100
        elif w in ("mil", "mille"):
            total += (current or 1) * 1000
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


# --------------------------------------------------------------------------- calendars

_MONTHS = {
    1: ("janvier", "janv"),
    2: ("février", "fevrier", "févr", "fevr", "fév", "fev"),
    3: ("mars",),
    4: ("avril", "avr"),
    5: ("mai",),
    6: ("juin",),
    7: ("juillet", "juil"),
    8: ("août", "aout", "aoust"),
    9: ("septembre", "sept", "7bre", "7^bre"),
    10: ("octobre", "oct", "8bre", "8^bre"),
    11: ("novembre", "nov", "9bre", "9^bre"),
    12: ("décembre", "decembre", "déc", "dec", "xbre", "x^bre", "10bre", "10^bre"),
}
_MONTH_OF = {name: m for m, names in _MONTHS.items() for name in names}

_REPUBLICAN = (
    ("vendémiaire", "vendemiaire"),
    ("brumaire",),
    ("frimaire",),
    ("nivôse", "nivose"),
    ("pluviôse", "pluviose"),
    ("ventôse", "ventose"),
    ("germinal",),
    ("floréal", "floreal"),
    ("prairial",),
    ("messidor",),
    ("thermidor",),
    ("fructidor",),
)
_REP_OF = {name: i + 1 for i, names in enumerate(_REPUBLICAN) for name in names}

# Gregorian date of 1 vendémiaire of years I..XIV (Annuaire / official concordance tables).
_VENDEMIAIRE_1 = {
    1: date(1792, 9, 22),
    2: date(1793, 9, 22),
    3: date(1794, 9, 22),
    4: date(1795, 9, 23),
    5: date(1796, 9, 22),
    6: date(1797, 9, 22),
    7: date(1798, 9, 22),
    8: date(1799, 9, 23),
    9: date(1800, 9, 23),
    10: date(1801, 9, 23),
    11: date(1802, 9, 23),
    12: date(1803, 9, 24),
    13: date(1804, 9, 23),
    14: date(1805, 9, 23),
}
_SEXTILE = {3, 7, 11}


def _is_sextile(year: int) -> bool:
    if year <= 14:
        return year in _SEXTILE
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)  # Romme's rule


def _year_start(year: int) -> date:
    if year in _VENDEMIAIRE_1:
        return _VENDEMIAIRE_1[year]
    d = _VENDEMIAIRE_1[14]
    for y in range(14, year):
        d += timedelta(days=366 if _is_sextile(y) else 365)
    return d


def republican_to_gregorian(year: int, month: int, day: int) -> date:
    """Gregorian date of `day` `month` (1..12; 13 = complementary days) of Republican year `year` (>= 1).

    Raises ValueError for a day that does not exist (day 31, a 6th complementary day in a common year).
    """
    if year < 1 or not 1 <= month <= 13:
        raise ValueError(f"no Republican month {month} of year {year}")
    last = (6 if _is_sextile(year) else 5) if month == 13 else 30
    if not 1 <= day <= last:
        raise ValueError(f"no day {day} in Republican month {month} of year {year}")
    return _year_start(year) + timedelta(days=(month - 1) * 30 + day - 1)


def _roman(text: str) -> int | None:
    vals = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}
    t = text.lower()
    if not t or any(c not in vals for c in t):
        return None
    total = 0
    for i, c in enumerate(t):
        v = vals[c]
        total += -v if i + 1 < len(t) and vals[t[i + 1]] > v else v
    return total


def _valid(y: int, m: int, d: int) -> bool:
    try:
        date(y, m, d)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- patterns


def _alt(names) -> str:
    out = []
    for n in sorted(names, key=len, reverse=True):
        p = re.escape(n).replace(r"\^", r"\^?")
        out.append(p)
    return "(?:" + "|".join(out) + ")"


_B = r"(?<![\w^])"  # left word boundary
_E = r"(?![\w])"  # right word boundary
_MONTH = _alt(_MONTH_OF) + r"\.?"
_REPMONTH = _alt(_REP_OF)
_NUMW = _alt(_NUMBER_WORDS)
_NUMWORDS = rf"{_NUMW}(?:[\s\-]+{_NUMW})*"
_DAYNUM = r"(?:[0-3I]?\d)(?:\s?\^?(?:er|ème|eme|e|°))?"
_DAY = rf"(?:{_DAYNUM}|premier|{_NUMWORDS})"
_YEAR = r"(?:[1I]\d{3}|20\d\d)"
_YEARW = rf"(?:(?:mil|mille|dix[\s\-]+(?:sept|huit|neuf))(?:[\s\-]+{_NUMW})*)"
_ANREP = r"(?:de\s+)?(?:l['’]\s*)?an\s+(?P<an>[IVXLC]{1,7}|\d{1,2})"
_ORD = r"(?:premier|1\s?\^?er|deuxième|second|2\s?\^?e|troisième|3\s?\^?e|quatrième|4\s?\^?e|cinquième|5\s?\^?e|sixième|6\s?\^?e)"

_PATTERNS = [
    # 3 germinal an XII
    ("rep_day", re.compile(rf"{_B}(?P<d>{_DAY})\s+(?:de\s+)?(?P<m>{_REPMONTH})\s+{_ANREP}{_E}", re.I)),
    # 1er jour complémentaire de l'an XI / 2e sans-culottide an II
    (
        "rep_compl",
        re.compile(rf"{_B}(?P<d>{_ORD})\s+(?:jour\s+compl[ée]mentaire|sans[\s\-]?culottide)s?\s+{_ANREP}{_E}", re.I),
    ),
    # germinal an XII
    ("rep_month", re.compile(rf"{_B}(?P<m>{_REPMONTH})\s+{_ANREP}{_E}", re.I)),
    # l'an XII (alone)
    ("rep_year", re.compile(rf"{_B}l['’]\s*an\s+(?P<an>[IVXLC]{{1,7}}){_E}", re.I)),
    # 12 mars 1850 / 1er janvier 1900 / dix Juillet 1830 / douze mars mil huit cent cinquante
    (
        "dmy",
        re.compile(
            rf"{_B}(?P<d>{_DAY})\s+(?:de\s+)?(?P<m>{_MONTH})(?:\s*,)?\s+(?:de\s+l['’]an\s+)?(?P<y>{_YEAR}|{_YEARW}){_E}",
            re.I,
        ),
    ),
    # An 1830 mois de Juillet
    ("ym_register", re.compile(rf"{_B}(?:an\s+)?(?P<y>{_YEAR})\s+mois\s+d['e]\s*(?P<m>{_MONTH})(?![^\W\d_])", re.I)),
    # mars 1850
    ("my", re.compile(rf"{_B}(?P<m>{_MONTH})(?:\s*,)?\s+(?:de\s+l['’]an\s+)?(?P<y>{_YEAR}|{_YEARW}){_E}", re.I)),
    # 15 avril
    ("dm", re.compile(rf"{_B}(?P<d>{_DAY})\s+(?:de\s+)?(?P<m>{_MONTH})(?![\w^])", re.I)),
    # 1850-03-12
    ("iso", re.compile(rf"{_B}(?P<y>\d{{4}})-(?P<m>\d\d)-(?P<d>\d\d){_E}")),
    # 12/03/1850, 12.03.1850
    ("dmy_num", re.compile(rf"{_B}(?P<d>\d{{1,2}})(?P<sep>[/.])(?P<m>\d{{1,2}})(?P=sep)(?P<y>\d{{4}}){_E}")),
    # mil huit cent cinquante
    ("year_words", re.compile(rf"{_B}(?P<y>{_YEARW}){_E}", re.I)),
    # en 1850 / l'an 1850 / année 1850: the span is the year only
    (
        "year_ctx",
        re.compile(rf"{_B}(?:en|an|l['’]an|année|l['’]année|depuis|dès|vers|avant|après)\s+(?P<y>{_YEAR}){_E}", re.I),
    ),
]
_YEAR_ONLY_SPAN = {"year_ctx"}


@dataclass(frozen=True)
class DateMatch:
    """A date found in a text: character span, surface and ISO 8601 form."""

    start: int
    end: int
    surface: str
    iso: str


def _year(text: str) -> int | None:
    t = text.strip()
    if re.fullmatch(r"[\dI]\d{3}", t, re.I):
        return int(t.upper().replace("I", "1"))
    v = number_from_words(t)
    return v if v is not None and 1000 <= v <= 2099 else None


def _day(text: str) -> int | None:
    t = text.strip().lower()
    if t == "premier":
        return 1
    m = re.match(r"([0-3i]?\d)", t)
    if m:
        return int(m.group(1).replace("i", "1"))
    v = number_from_words(t)
    return v if v is not None and 1 <= v <= 31 else None


def _ordinal(text: str) -> int | None:
    t = re.sub(r"[\s^]", "", text.lower())
    words = {"premier": 1, "deuxième": 2, "second": 2, "troisième": 3, "quatrième": 4, "cinquième": 5, "sixième": 6}
    if t in words:
        return words[t]
    m = re.match(r"(\d)", t)
    return int(m.group(1)) if m else None


def _month(text: str) -> int | None:
    return _MONTH_OF.get(text.lower().rstrip(".").replace("^", ""), _MONTH_OF.get(text.lower().rstrip(".")))


def _an(text: str) -> int | None:
    v = int(text) if text.isdigit() else _roman(text)
    return v if v and 1 <= v <= 100 else None


def _normalise(kind: str, m: re.Match) -> str | None:
    g = m.groupdict()
    if kind in ("rep_day", "rep_compl", "rep_month", "rep_year"):
        an = _an(g["an"])
        if an is None:
            return None
        try:
            if kind == "rep_year":
                start = republican_to_gregorian(an, 1, 1)
                end = republican_to_gregorian(an, 13, 6 if _is_sextile(an) else 5)
                return f"{start.isoformat()}/{end.isoformat()}"
            if kind == "rep_month":
                month = _REP_OF[g["m"].lower()]
                return f"{republican_to_gregorian(an, month, 1).isoformat()}/{republican_to_gregorian(an, month, 30).isoformat()}"
            if kind == "rep_compl":
                day = _ordinal(g["d"])
                return republican_to_gregorian(an, 13, day).isoformat() if day else None
            day = _day(g["d"])
            return republican_to_gregorian(an, _REP_OF[g["m"].lower()], day).isoformat() if day else None
        except (ValueError, KeyError):
            return None
    y: int | None  # year, month and day: None where words do not read as one
    mo: int | None
    d: int | None
    if kind in ("iso", "dmy_num"):
        y, mo, d = int(g["y"]), int(g["m"]), int(g["d"])
        return f"{y:04d}-{mo:02d}-{d:02d}" if 1000 <= y <= 2099 and _valid(y, mo, d) else None
    if kind in ("year_words", "year_ctx"):
        y = _year(g["y"])
        return f"{y:04d}" if y else None
    mo = _month(g["m"])
    if mo is None:
        return None
    if kind in ("my", "ym_register"):
        y = _year(g["y"])
        return f"{y:04d}-{mo:02d}" if y else None
    d = _day(g["d"])
    if d is None:
        return None
    if kind == "dm":
        return f"--{mo:02d}-{d:02d}" if _valid(2000, mo, d) else None
    y = _year(g["y"])
    return f"{y:04d}-{mo:02d}-{d:02d}" if y and _valid(y, mo, d) else None


def find_dates(text: str) -> list[DateMatch]:
    """Dates in `text`, left to right, not overlapping (the longest match wins at each place)."""
    cands: list[tuple[int, int, int, str]] = []
    impossible: set[int] = set()  # starts of "day month year" with a day the month does not have
    for prio, (kind, rx) in enumerate(_PATTERNS):
        for m in rx.finditer(text):
            iso = _normalise(kind, m)
            if iso is None:
                if kind == "dmy":
                    impossible.add(m.start())
                continue
            if kind == "dm" and m.start() in impossible:
                continue  # "29 février 1900" is not 29 February of some year: keep "février 1900" only
            s, e = (m.start("y"), m.end("y")) if kind in _YEAR_ONLY_SPAN else (m.start(), m.end())
            # a trailing abbreviation dot belongs to the sentence, not to the date ("15 avril.")
            while e > s and text[e - 1] in ". ,":
                e -= 1
            cands.append((s, e, prio, iso))
    cands.sort(key=lambda c: (c[0], -(c[1] - c[0]), c[2]))
    out: list[DateMatch] = []
    taken_end = -1
    for s, e, _, iso in cands:
        if s < taken_end:
            continue
        out.append(DateMatch(s, e, text[s:e], iso))
        taken_end = e
    return out
