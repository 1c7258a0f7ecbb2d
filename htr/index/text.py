"""Text helpers shared by the index: an imitation of SQLite FTS5's `unicode61 remove_diacritics 2`
tokenizer (to find which words of a page a query matched), and line-end hyphenation.

FTS5 itself decides which pages match; this module only locates the matching words inside a
page, so a rare difference between the two tokenizers can only cost a highlight box, never a hit.
"""

from __future__ import annotations

import unicodedata

# line-end hyphenation: one definition, beside the ALTO reader that applies it
from alto.reader import HYPHENS, continues_word, hyphen_stem  # noqa: F401, E402


def _is_token_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "LN" or cat in ("Co", "Mn")


def fold(text: str) -> str:
    """Case- and accent-folded form, as FTS5 `unicode61 remove_diacritics 2` indexes it (État -> etat)."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower()


def tokens(text: str) -> list[tuple[str, int, int]]:
    """Tokens of `text` as (folded token, start, end) character offsets into `text`.

    Token characters are letters, digits and private-use characters (unicode61's default
    categories `L* N* Co`); everything else separates tokens.
    """
    out: list[tuple[str, int, int]] = []
    start = None
    for i, ch in enumerate(text):
        if _is_token_char(ch):
            if start is None:
                start = i
        elif start is not None:
            tok = fold(text[start:i])
            if tok:
                out.append((tok, start, i))
            start = None
    if start is not None:
        tok = fold(text[start:])
        if tok:
            out.append((tok, start, len(text)))
    return out


def has_token(text: str) -> bool:
    return any(_is_token_char(c) for c in text)
