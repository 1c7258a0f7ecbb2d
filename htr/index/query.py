"""User query language -> FTS5 MATCH expression, built so user text can never be FTS5 or SQL syntax.

The language: plain words (all must occur in the page), `"a phrase"` (consecutive words),
`prefix*` (words starting with it), `"phrase prefix"*`; `AND` between terms is accepted (it is the
default), `a OR b` (either), `NOT a` (pages without it). Case and accents never matter. Every term
reaches FTS5 as a double-quoted string (inner quotes doubled), and the expression itself is passed as an SQL parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from htr.index.errors import QueryError
from htr.index.text import has_token, tokens

MAX_QUERY_CHARS = 1000
MAX_TERMS = 32


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


@dataclass(frozen=True)
class ParsedQuery:
    """Groups of alternatives (OR), all groups required (AND), and excluded terms (NOT)."""

    groups: tuple[tuple[Term, ...], ...]
    excluded: tuple[Term, ...] = ()

    @property
    def terms(self) -> list[Term]:
        """The terms to find (and highlight): every alternative of every group."""
        return [t for g in self.groups for t in g]

    def fts(self) -> str:
        parts = [g[0].fts() if len(g) == 1 else "(" + " OR ".join(t.fts() for t in g) + ")" for g in self.groups]
        expr = " AND ".join(parts)
        if self.excluded:
            expr = "(" + expr + ")" + "".join(f" NOT {t.fts()}" for t in self.excluded)
        return expr


def parse_query(query: str) -> ParsedQuery:
    """Parse `query`; raises QueryError with a one-line explanation when it is malformed.

    Operators (upper case only; lower-case `and`/`or`/`not` are words): `a b` and `a AND b` need
    both, `a OR b` either (OR binds tighter than AND), `NOT a` excludes pages with `a`. NEAR and
    parentheses are not supported.
    """
    if query is None or not str(query).strip():
        raise QueryError('empty query: give one or more words, a "phrase" or a prefix*')
    q = str(query)
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(f"query too long ({len(q)} characters, at most {MAX_QUERY_CHARS})")
    items: list[Term | str] = []
    lone_star = ""
    i, n = 0, len(q)
    while i < n:
        ch = q[i]
        if ch.isspace():
            i += 1
            continue
        if ch == '"':
            end = q.find('"', i + 1)
            if end < 0:
                raise QueryError(f'unclosed quote: add a closing " after {q[i : i + 30]!s}')
            body = q[i + 1 : end]
            i = end + 1
            prefix = i < n and q[i] == "*"
            if prefix:
                i += 1
            if not body.strip():
                raise QueryError('empty phrase "": put words between the quotes')
            items.append(_term(body, prefix, True, f'the phrase "{body}"'))
            continue
        j = i
        while j < n and not q[j].isspace() and q[j] != '"':
            j += 1
        word = q[i:j]
        i = j
        if word in ("AND", "OR", "NOT"):
            items.append(word)
            continue
        op = word.split("(", 1)[0]
        if op == "NEAR":
            raise QueryError(
                'NEAR is not supported: write words (all must occur), "a phrase", a prefix*, OR, NOT'
                ' (to search for the word itself, put it in quotes: "NEAR")'
            )
        if "(" in word and not has_token(word.replace("(", "")):
            raise QueryError('parentheses are not supported: write words, "a phrase", a prefix*, OR, NOT')
        prefix = word.endswith("*")
        core = word.rstrip("*") if prefix else word
        if "*" in core:
            raise QueryError(f"{word}: * is only allowed at the end of a word, as in notai*")
        if prefix and not has_token(core):
            lone_star = word
            continue  # "SELECT * FROM": a star on its own is no term (an error if it is all there is)
        if not has_token(core):
            continue  # punctuation only: nothing to search
        items.append(_term(core, prefix, False, word))

    groups: list[list[Term]] = []
    excluded: list[Term] = []
    pending: str | None = None
    last: str | None = None  # "term", "excluded" or None
    for it in items:
        if isinstance(it, str):
            if it in ("AND", "OR"):
                if last is None or pending:
                    raise QueryError(f"{it} needs a word or phrase on each side")
                if it == "OR" and last == "excluded":
                    raise QueryError("NOT excludes one word or phrase: it cannot be combined with OR")
            elif pending == "NOT":
                raise QueryError("NOT NOT: write NOT once, before the word or phrase to exclude")
            pending = it
            continue
        if pending == "OR":
            groups[-1].append(it)
            last = "term"
        elif pending == "NOT":
            excluded.append(it)
            last = "excluded"
        else:
            groups.append([it])
            last = "term"
        pending = None
    if pending:
        raise QueryError(f"{pending} needs a word or phrase after it")
    if not groups:
        if lone_star:
            raise QueryError(f"{lone_star}: * must follow the beginning of a word, as in notai*")
        if excluded:
            raise QueryError("NOT only excludes: add a word or phrase to search for")
        raise QueryError("nothing to search for: the query has no letters or digits")
    n_terms = sum(len(g) for g in groups) + len(excluded)
    if n_terms > MAX_TERMS:
        raise QueryError(f"too many terms ({n_terms}, at most {MAX_TERMS})")
    return ParsedQuery(tuple(tuple(g) for g in groups), tuple(excluded))


def parse(query: str) -> list[Term]:
    """The terms to find in `query` (see parse_query)."""
    return parse_query(query).terms


def build(query: str) -> tuple[str, list[Term]]:
    """(FTS5 expression, terms to highlight) for a user query."""
    pq = parse_query(query)
    return pq.fts(), pq.terms
