"""User query language -> FTS5 MATCH expression, built so user text can never be FTS5 or SQL syntax.

The language: plain words (all must occur in the page), `"a phrase"` (consecutive words),
`prefix*` (words starting with it), `"phrase prefix"*`; `AND` between terms is accepted (it is the
default). Case and accents never matter. Every term reaches FTS5 as a double-quoted string
(inner quotes doubled), and the expression itself is passed as an SQL parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from htr.index.errors import QueryError
from htr.index.text import has_token, tokens

MAX_QUERY_CHARS = 1000
MAX_TERMS = 32
_UNSUPPORTED = {"OR", "NOT", "NEAR"}


@dataclass(frozen=True)
class Term:
    """One query element: a word or a phrase (several tokens in a row), maybe a prefix."""

    text: str  # as the user wrote it (without quotes / star)
    tokens: tuple[str, ...]  # folded tokens, as the index stores them
    prefix: bool = False
    phrase: bool = False

    def fts(self) -> str:
        quoted = '"' + self.text.replace('"', '""') + '"'
        return quoted + ("*" if self.prefix else "")


def _term(text: str, prefix: bool, phrase: bool, shown: str) -> Term:
    toks = tuple(t for t, _, _ in tokens(text))
    if not toks:
        raise QueryError(f"{shown} has no letters or digits to search for")
    return Term(text, toks, prefix, phrase)


def parse(query: str) -> list[Term]:
    """The terms of `query`; raises QueryError with a one-line explanation when it is malformed."""
    if query is None or not str(query).strip():
        raise QueryError("empty query: give one or more words, a \"phrase\" or a prefix*")
    q = str(query)
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(f"query too long ({len(q)} characters, at most {MAX_QUERY_CHARS})")
    terms: list[Term] = []
    ands: list[int] = []  # positions (in terms) where an AND was written
    i, n = 0, len(q)
    while i < n:
        ch = q[i]
        if ch.isspace():
            i += 1
            continue
        if ch == '"':
            end = q.find('"', i + 1)
            if end < 0:
                raise QueryError(f"unclosed quote: add a closing \" after {q[i:i + 30]!s}")
            body = q[i + 1 : end]
            i = end + 1
            prefix = i < n and q[i] == "*"
            if prefix:
                i += 1
            if not body.strip():
                raise QueryError('empty phrase "": put words between the quotes')
            terms.append(_term(body, prefix, True, f'the phrase "{body}"'))
            continue
        j = i
        while j < n and not q[j].isspace() and q[j] != '"':
            j += 1
        word = q[i:j]
        i = j
        bare = word.upper().rstrip("(")
        if word == "AND":
            ands.append(len(terms))
            continue
        if word.rstrip("(") in _UNSUPPORTED or word.startswith("NEAR("):
            raise QueryError(
                f"{bare} is not supported: write words (all must occur), \"a phrase\" or a prefix*"
                f' (put it in quotes, "{word.rstrip("(")}", to search for the word itself)'
            )
        if "(" in word and not has_token(word.replace("(", "")):
            raise QueryError("parentheses are not supported: write words, \"a phrase\" or a prefix*")
        prefix = word.endswith("*")
        core = word.rstrip("*") if prefix else word
        if "*" in core:
            raise QueryError(f"{word}: * is only allowed at the end of a word, as in notai*")
        if prefix and not has_token(core):
            raise QueryError(f"{word}: * must follow the beginning of a word, as in notai*")
        if not has_token(core):
            continue  # punctuation only: nothing to search
        terms.append(_term(core, prefix, False, word))
    for pos in ands:
        if pos == 0 or pos >= len(terms):
            raise QueryError("AND needs a word or phrase on each side (words are AND-ed anyway)")
    if not terms:
        raise QueryError("nothing to search for: the query has no letters or digits")
    if len(terms) > MAX_TERMS:
        raise QueryError(f"too many terms ({len(terms)}, at most {MAX_TERMS})")
    return terms


def to_fts(terms: list[Term]) -> str:
    """The FTS5 MATCH expression for `terms` (all required)."""
    return " AND ".join(t.fts() for t in terms)


def build(query: str) -> tuple[str, list[Term]]:
    """(FTS5 expression, terms) for a user query."""
    terms = parse(query)
    return to_fts(terms), terms
