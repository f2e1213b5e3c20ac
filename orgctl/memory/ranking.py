"""Ranking of memory items: write-time enrichment, BM25 + dense + graph channels, fusion.

Pure and in-process: no I/O, no model (the caller passes the vectors and an ``embed`` function), so the
index service can wrap it around any store (Chroma persistence, files). The unit of retrieval is the item
(for a conversation: a turn); :meth:`Ranker.search` returns at most ``k`` distinct ids.

Pipeline, per query:

1. **Lexical** — BM25 (Robertson & Zaragoza 2009; the ``bm25s`` library) over :func:`enrich`'ed texts:
   speaker, the item's absolute date, relative dates resolved to absolute ones (:func:`resolve_dates`),
   image captions as written by the store. Tokens by :func:`tokenize` (stop words out, :func:`stem`).
2. **Dense** — cosine of the query's vector with the items' vectors (the caller's embedder).
   Both channels are then *smoothed* along time adjacency (:func:`smooth`: a reply inherits half the score
   of the question it answers) and *focused* on the speaker a query names (:meth:`Ranker._focus`).
3. **Fusion** — a convex combination of max-normalised scores (:func:`normalise`; Bruch, Gai & Ingber,
   "An Analysis of Fusion Functions for Hybrid Retrieval", TOIS 2023), BM25 1.0 + dense 0.5; weighted
   reciprocal-rank fusion (:func:`rrf`, Cormack et al. 2009) is the alternative (``Settings.fusion``).
4. **Second hop** (convex fusion) — RM3 pseudo-relevance feedback (:meth:`Ranker._rm3`; Lavrenko & Croft 2001, with
   Anserini's defaults: 10 feedback items, 10 terms, original query weight 0.5): the fused top items' salient
   terms (first-hop score x BM25 weight, date words out) re-query BM25; the lexical channel becomes half the
   original query's, half the expanded query's. Spreading activation through content: evidence told in
   another session with the vocabulary of the best hits, not the question's, is reached (multi-hop).
5. **Session level** — hierarchical scoring (:meth:`Ranker._group_scores`): BM25 over each group's
   concatenated text + cosine with its mean vector, normalised, weight 0.2, added to its items' scores, a soft
   form of the two-stage "session, then turn" retrievers.
6. **Graph** — personalized PageRank (:func:`personalized_pagerank`, Haveliwala 2002) over a memory
   graph in the manner of HippoRAG (Gutiérrez et al. 2024): item nodes, entity nodes (:func:`entities`,
   shared rare terms), item-item edges for time adjacency (same group, neighbouring ``seq``) and explicit
   links. Seeds: the fused top items. The activation that spread from them over the edges (the walk's
   restart mass taken out, :meth:`Ranker._graph_scores`) is fused as a further channel.

LoCoMo dev (760 questions, bench/locomo_research.py) recall@10: 0.800 (BM25 alone 0.633; without steps 4-5
0.783; without step 6 0.791). Tried and dropped (no gain or a loss in both halves): Rocchio's dense
second hop, a reply carrying the words of the question it answers, recent proper nouns carried forward,
session diversity in the top k (at most 1-4 turns per session: -0.204 to -0.006), one ranking per named
speaker interleaved, a window of +-2-3 neighbours (single-hop up, multi-hop down), a prior against question
turns, dense vectors of a 1-2-turn window (-0.005 to +0.004), the best sentence's vector instead of the
turn's (-0.007 to +0.001), BM25 k1/b variants. Expanding the query with the memory's own words nearest to
its words in the embedding space gave +0.010 at best: not kept, as it needs a vector for every word of
every memory for one point of recall.

Latency: the graph is a precomputed, column-normalised ``scipy.sparse`` matrix; a query runs a few
power-iteration steps over it (about a millisecond per step for 10,000 items), never ``networkx``
over the whole graph.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import scipy.sparse as sp

# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Doc:
    """One memory item as the ranker sees it."""

    id: str  # unique item id, e.g. "episodes/2023-05-08.md#13:56:03"
    text: str  # the raw text as stored
    kind: str  # "episode" | "knowledge" | "procedure" | "common" | "skill"
    when: datetime | None  # the item's absolute time (for a turn: its session's date-time)
    group: str  # time-adjacency group (for a turn: its session)
    seq: int  # order within the group
    speaker: str = ""
    links: tuple[str, ...] = ()  # explicit links to other doc ids (wikilinks, a note's sources)


@dataclass(frozen=True)
class Hit:
    """One result: the item id, its fused score and each channel's contribution (for explainability)."""

    id: str
    score: float
    channels: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ tokens

STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself
him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
mustn't my myself no nor not of off on once only or other ought our ours ourselves out over own same shan't
she she'd she'll she's should shouldn't so some such than that that's the their theirs them themselves then
there there's these they they'd they'll they're they've this those through to too under until up very was
wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while who who's
whom why why's will with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
also just really yeah yes oh hey hi thanks thank wow lot lots get got gonna would like s t d ll m re ve
""".split())

# Words of questions that carry no content ("What did X do ...?", "How long ...?").
QUERY_STOPWORDS = frozenset("kind type sort thing things likely would might ever".split())

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_HYPHENATED = re.compile(r"\b[a-z]+(?:-[a-z]+)+\b")

# Irregular English verb forms -> base form (stemming cannot meet "won" and "win"). General, not data-derived.
IRREGULAR = {form: base for base, forms in {
    "be": "was were been", "begin": "began begun", "break": "broke broken", "bring": "brought",
    "build": "built", "buy": "bought", "catch": "caught", "choose": "chose chosen", "come": "came",
    "do": "did done", "draw": "drew drawn", "drink": "drank drunk", "drive": "drove driven", "eat": "ate eaten",
    "fall": "fell fallen", "feel": "felt", "fight": "fought", "find": "found", "fly": "flew flown",
    "forget": "forgot forgotten", "get": "got gotten", "give": "gave given", "go": "went gone",
    "grow": "grew grown", "have": "had", "hear": "heard", "hold": "held", "keep": "kept", "know": "knew known",
    "leave": "left", "lend": "lent", "lose": "lost", "make": "made", "meet": "met", "pay": "paid",
    "ride": "rode ridden", "ring": "rang rung", "rise": "rose risen", "run": "ran", "say": "said", "see": "saw seen",
    "sell": "sold", "send": "sent", "sing": "sang sung", "sit": "sat", "sleep": "slept", "speak": "spoke spoken",
    "spend": "spent", "stand": "stood", "steal": "stole stolen", "swim": "swam swum", "take": "took taken",
    "teach": "taught", "tell": "told", "think": "thought", "throw": "threw thrown", "understand": "understood",
    "wake": "woke woken", "wear": "wore worn", "win": "won", "write": "wrote written", "child": "children",
    "man": "men", "woman": "women", "person": "people", "mouse": "mice", "foot": "feet", "tooth": "teeth",
}.items() for form in forms.split()}


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A tiny English suffix stripper: ``"paintings"``, ``"painted"``, ``"painting"`` -> ``"paint"``.

    A few rules of Porter (1980)'s step 1 (plural, -ed, -ing, -y/-ies, final -e, doubled consonant), so that
    inflections meet; it rarely merges unrelated words. Non-alphabetic and short words are kept.
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "i"  # families -> famili, as family below (Porter's step 1c)
    if word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # running -> run, planned -> plan
            return word
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "i"
    if word.endswith("e") and len(word) >= 4:
        word = word[:-1]  # dance / dancing / danced -> danc
    return word


def tokenize(text: str, *, query: bool = False) -> list[str]:
    """``text`` as BM25 tokens: lower-cased words, stop words removed, :data:`IRREGULAR` forms to their base,
    :func:`stem`'ed; a hyphenated word also gives its joined form (``de-stress`` -> ``destress``).
    Shape: ``list[str]``."""
    low = text.lower().replace("’", "'")
    words = _WORD.findall(low) + [m.group(0).replace("-", "") for m in _HYPHENATED.finditer(low)]
    out = []
    for w in words:
        w = w.removesuffix("'s")
        if w in STOPWORDS or (query and w in QUERY_STOPWORDS):
            continue
        out.append(stem(IRREGULAR.get(w, w)))
    return out


# ------------------------------------------------------------------------------------------- dates

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "couple of": 2, "a couple of": 2,
            "few": 3, "a few": 3}
_NUM_RE = r"(\d+|a couple of|couple of|a few|few|an|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"


def format_day(day: datetime) -> str:
    """``datetime(2023, 5, 7)`` -> ``"7 May 2023"`` (the form LoCoMo-style questions and answers use)."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def format_month(day: datetime) -> str:
    """``datetime(2023, 6, 1)`` -> ``"June 2023"``."""
    return f"{MONTHS[day.month - 1]} {day.year}"


def _add_months(day: datetime, months: int) -> datetime:
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1, day=1)


def _week_of(day: datetime) -> str:
    monday = day - timedelta(days=day.weekday())
    return f"week of {format_day(monday)}"


_AGO = re.compile(rf"\b{_NUM_RE} (day|week|month|year)s? ago\b")
_WEEKDAY = re.compile(rf"\b(last|this past|past|this|next|coming|on|this coming) ({'|'.join(WEEKDAYS)})\b")
_TRIGGER = re.compile(r"ago\b|yesterday|tomorrow|today|tonight|\b(last|this|next|coming|recently|other day|just)\b|"
                      r"day\b")
_FIXED: tuple[tuple[re.Pattern[str], Callable[[datetime], str]], ...] = (
    (re.compile(r"\bday before yesterday\b"), lambda day: format_day(day - timedelta(days=2))),
    (re.compile(r"\byesterday\b"), lambda day: format_day(day - timedelta(days=1))),
    (re.compile(r"\blast night\b"), lambda day: format_day(day - timedelta(days=1))),
    (re.compile(r"\btomorrow\b"), lambda day: format_day(day + timedelta(days=1))),
    (re.compile(r"\b(today|tonight|this morning|this afternoon|this evening)\b"), format_day),
    (re.compile(r"\blast weekend\b"), lambda day: f"weekend before {format_day(day)}"),
    (re.compile(r"\b(this|next|coming) weekend\b"), lambda day: f"weekend after {format_day(day)}"),
    (re.compile(r"\blast week\b"), lambda day: _week_of(day - timedelta(weeks=1))),
    (re.compile(r"\bthis week\b"), _week_of),
    (re.compile(r"\bnext week\b"), lambda day: _week_of(day + timedelta(weeks=1))),
    (re.compile(r"\blast month\b"), lambda day: format_month(_add_months(day, -1))),
    (re.compile(r"\bthis month\b"), format_month),
    (re.compile(r"\bnext month\b"), lambda day: format_month(_add_months(day, 1))),
    (re.compile(r"\blast year\b"), lambda day: str(day.year - 1)),
    (re.compile(r"\bthis year\b"), lambda day: str(day.year)),
    (re.compile(r"\bnext year\b"), lambda day: str(day.year + 1)),
    (re.compile(r"\brecently\b|\bthe other day\b|\bjust\b"), lambda day: f"shortly before {format_day(day)}"),
)


def resolve_dates(text: str, when: datetime | None) -> list[tuple[str, str]]:
    """Relative time expressions of ``text`` resolved against ``when``: ``[(phrase, absolute), ...]``.

    ``"yesterday"`` on 8 May 2023 -> ``("yesterday", "7 May 2023")``; ``"last Saturday"`` -> the Saturday
    before; ``"two weeks ago"`` -> ``"week of 24 April 2023"``; ``"next month"`` -> ``"June 2023"``;
    ``"last year"`` -> ``"2022"``. A bare past weekday (``"on Friday"``) is taken as the latest one before
    ``when``. Deterministic; empty when ``when`` is None.
    """
    if when is None:
        return []
    low = text.lower().replace("’", "'")
    if not _TRIGGER.search(low):
        return []
    found: list[tuple[int, str, str]] = []
    taken: list[tuple[int, int]] = []

    def add(match: re.Match[str], value: str) -> None:
        start, end = match.span()
        if any(s < end and start < e for s, e in taken):
            return
        taken.append((start, end))
        found.append((start, match.group(0), value))

    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    for m in _AGO.finditer(low):
        n, unit = _NUMBERS.get(m.group(1)) or int(m.group(1)), m.group(2)
        if unit == "day":
            add(m, format_day(day - timedelta(days=n)))
        elif unit == "week":
            add(m, _week_of(day - timedelta(weeks=n)))
        elif unit == "month":
            add(m, format_month(_add_months(day, -n)))
        else:
            add(m, str(day.year - n))
    for m in _WEEKDAY.finditer(low):
        target = WEEKDAYS.index(m.group(2))
        if m.group(1) in ("next", "coming", "this coming"):
            delta = (target - day.weekday()) % 7 or 7
            add(m, format_day(day + timedelta(days=delta)))
        elif m.group(1) == "this":
            delta = target - day.weekday()
            add(m, format_day(day + timedelta(days=delta)))
        else:
            delta = (day.weekday() - target) % 7 or 7
            add(m, format_day(day - timedelta(days=delta)))
    for pattern, value in _FIXED:
        for m in pattern.finditer(low):
            add(m, value(day))
    found.sort()
    return [(phrase, value) for _, phrase, value in found]


def parse_when(text: str) -> datetime | None:
    """A LoCoMo-style session date-time (``"1:56 pm on 8 May, 2023"``) as a datetime; None if unparseable."""
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%d %B %Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


# ----------------------------------------------------------------------------------------- entities

_CAPITALISED = re.compile(r"\b[A-Z][a-zA-Z'’-]+(?:\s+[A-Z][a-zA-Z'’-]+)*")


def entities(text: str) -> list[str]:
    """Proper-noun-like spans of ``text``: runs of capitalised words not at a sentence start, lower-cased.

    ``"I met Jon at Lake Tahoe."`` -> ``["jon", "lake tahoe"]``. A sentence-initial capital counts only
    when it is not a stop word (``"Paris was great"`` keeps ``"paris"``). Shape: ``list[str]``, in order.
    """
    out = []
    for m in _CAPITALISED.finditer(text):
        words = m.group(0).replace("’", "'").split()
        while words and words[0].lower().removesuffix("'s") in STOPWORDS | {"i"}:
            words = words[1:]
        words = [w.removesuffix("'s") for w in words]
        if words:
            out.append(" ".join(words).lower())
    return out


# ------------------------------------------------------------------------------------------- enrich


def enrich(doc: Doc) -> str:
    """The text indexed for ``doc`` (lexical and dense): deterministic, from the doc alone.

    ``"Caroline (8 May 2023): I went to a support group yesterday. [yesterday = 7 May 2023]"``: the speaker,
    the item's date, the raw text (captions are already part of it, rendered by the store), then each relative
    date resolved to an absolute one.
    """
    return _enrich(doc, resolve_dates(doc.text, doc.when))


def _enrich(doc: Doc, resolved: list[tuple[str, str]]) -> str:
    head = doc.speaker
    if doc.when is not None:
        head = f"{head} ({format_day(doc.when)})" if head else f"({format_day(doc.when)})"
    tail = " ".join(f"[{phrase} = {value}]" for phrase, value in resolved)
    return " ".join(part for part in (f"{head}:" if head else "", doc.text, tail) if part)


def embedding_text(doc: Doc) -> str:
    """The text whose vector :class:`Ranker` expects for ``doc`` (the index service embeds exactly this)."""
    return f"{doc.speaker}: {doc.text}" if doc.speaker else doc.text


# ------------------------------------------------------------------------------------------- fusion


def rrf(rankings: Sequence[Sequence[int]], *, k: int = 60, weights: Sequence[float] | None = None) -> dict[int, float]:
    """Reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): ``score(d) = sum_i w_i / (k + rank_i(d))``.

    ``rankings``: lists of item indices, best first (rank 1 = first). ``k=60`` is the paper's constant.
    Returns ``{index: fused score}``.
    """
    fused: dict[int, float] = {}
    for i, ranking in enumerate(rankings):
        w = 1.0 if weights is None else weights[i]
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + w / (k + rank)
    return fused


def personalized_pagerank(matrix: sp.csr_matrix, seeds: np.ndarray, *, alpha: float = 0.5, steps: int = 20,
                          tol: float = 1e-6) -> np.ndarray:
    """Personalized PageRank (Haveliwala, WWW 2002) by power iteration: ``p = (1-alpha) s + alpha M p``.

    ``matrix``: ``(n, n)`` column-stochastic transition matrix (column j = where a walker on j goes; a column
    of zeros is a dangling node, whose mass returns to the seeds). ``seeds``: ``(n,)`` non-negative, any sum.
    ``alpha`` is the probability of following an edge (networkx's ``alpha``); HippoRAG uses 0.5 to keep the
    walk close to the seeds. Returns ``(n,)`` summing to 1, the same as ``networkx.pagerank(G, alpha,
    personalization=seeds, dangling=seeds)`` on the same graph.
    """
    s = seeds / seeds.sum()
    p = s.copy()
    for _ in range(steps):
        nxt = alpha * (matrix @ p)
        nxt += (1.0 - nxt.sum()) * s  # teleport + dangling mass, back to the seeds
        if np.abs(nxt - p).sum() < tol:
            return nxt
        p = nxt
    return p


# ------------------------------------------------------------------------------------------- ranker

TEMPORAL_QUERY = re.compile(r"^\s*(when|what (date|day|year|month|time)|how long|which (year|month|day))\b|"
                            r"\b(when|what year|how long ago|since when)\b", re.I)


@dataclass
class Settings:
    """The ranker's few general parameters (not tuned per question)."""

    rrf_k: int = 60  # Cormack et al. 2009
    w_bm25: float = 1.0
    w_dense: float = 0.5
    w_graph: float = 1.0
    depth: int = 100  # how many items of each channel enter the fusion
    enrich: bool = True
    graph: bool = True
    adjacency: bool = True  # item-item edges between neighbours of a group
    alpha: float = 0.5  # PPR: probability of following an edge (HippoRAG's damping)
    seeds: int = 10  # fused top items seeding the walk
    entity_max_df: float = 0.05  # an entity (term) node links items only if it is in <= this fraction of them
    adjacency_weight: float = 1.0
    link_weight: float = 1.0
    temporal_boost: bool = True
    k1: float = 1.5  # BM25 (bm25s' defaults)
    b: float = 0.75
    fusion: str = "convex"  # "rrf" (Cormack et al. 2009) or "convex" (normalised scores, Bruch et al. 2023)
    reply: float = 0.5  # neighbour smoothing: an item gains this share of the previous item's channel score
    context: float = 0.25  # ... and this share of the next item's (a question answered right after)
    questions_only: bool = True  # the reply share flows only from an item that asks a question
    speaker_focus: float = 0.5  # a query naming one speaker: other speakers' items keep this share of their score
    prf_docs: int = 10  # second hop, RM3 pseudo-relevance feedback from this many first-hop items (0 = off)
    prf_terms: int = 10  # RM3 expansion terms (Anserini's default fbTerms; fbDocs is also 10)
    prf_query_weight: float = 0.5  # RM3: weight of the original query terms (Anserini's originalQueryWeight)
    prf_weight: float = 0.5  # the lexical channel = (1 - w) * BM25(query) + w * BM25(RM3 query), each normalised
    session_weight: float = 0.2  # hierarchical: weight of the item's group (session) score (bm25 1.0, dense 0.5)


class Ranker:
    """BM25 + dense + memory-graph ranking over one memory's items.

    ``vectors[i]`` is the unit embedding of :func:`embedding_text` ``(docs[i])``; ``embed`` embeds queries.
    Either may be None (lexical + graph only). Building: O(total tokens), ~1.7 s for 10,000 turns on 2 cores.
    :meth:`add` rebuilds the lexical index and graph (bm25s has no incremental index); the vectors are appended.
    """

    def __init__(self, docs: list[Doc], vectors: np.ndarray | None = None,
                 embed: Callable[[list[str]], np.ndarray] | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.embed = embed
        self.docs: list[Doc] = []
        self.vectors: np.ndarray | None = None
        self._build(list(docs), vectors)

    # -- building

    def add(self, docs: list[Doc], vectors: np.ndarray | None = None) -> None:
        """Add items (and their vectors, if the ranker has vectors). Rebuilds the lexical index and graph."""
        if self.vectors is not None and vectors is not None:
            vectors = np.vstack([self.vectors, vectors])
        elif self.vectors is not None or (vectors is not None and self.docs):
            vectors = None  # a partial set of vectors: dense is off rather than misaligned
        self._build(self.docs + list(docs), vectors)

    def _build(self, docs: list[Doc], vectors: np.ndarray | None) -> None:
        import bm25s

        self.docs = docs
        self.index = {d.id: i for i, d in enumerate(docs)}
        self.vectors = None if vectors is None else np.asarray(vectors, dtype=np.float32)
        resolved = [resolve_dates(d.text, d.when) for d in docs]
        texts = [_enrich(d, r) if self.settings.enrich else (f"{d.speaker}: {d.text}" if d.speaker else d.text)
                 for d, r in zip(docs, resolved, strict=True)]
        self._speaker_ids: dict[str, int] = {}
        for d in docs:
            if d.speaker:
                self._speaker_ids.setdefault(d.speaker.lower(), len(self._speaker_ids))
        self.tokens = [tokenize(t) for t in texts]
        self.prev, self.next = neighbours(docs)
        self.temporal = np.array([bool(r) or bool(_EXPLICIT_DATE.search(d.text)) for d, r in
                                  zip(docs, resolved, strict=True)] + [False], dtype=bool)[: len(docs)]
        self.speaker_of = np.array([self._speaker_ids.get(d.speaker.lower(), -1) for d in docs], dtype=np.int64)
        if self.settings.questions_only:
            asks = np.array([("?" in d.text) for d in docs] + [False], dtype=bool)
            self.prev_q = np.where(asks[self.prev], self.prev, -1)
        else:
            self.prev_q = self.prev
        self.bm25 = bm25s.BM25(k1=self.settings.k1, b=self.settings.b)
        if docs:
            self.bm25.index([t or [""] for t in self.tokens], show_progress=False)
            sc = self.bm25.scores
            vocab = len(sc["indptr"]) - 1
            # (n, V) BM25 weight of each term in each item: columns score a query, rows give feedback terms
            self._term_matrix = sp.csc_matrix((sc["data"], sc["indices"], sc["indptr"]), shape=(len(docs), vocab))
            self._doc_terms = self._term_matrix.tocsr()
            inverse = {i: t for t, i in self.bm25.vocab_dict.items()}
            self._date_term = np.array([_is_date_token(inverse.get(i, "")) for i in range(vocab)], dtype=bool)
        groups: dict[str, int] = {}
        self.group_of = np.array([groups.setdefault(d.group, len(groups)) for d in docs], dtype=np.int64)
        self.n_groups = len(groups)
        self._build_groups()
        self._build_graph()

    def _build_groups(self) -> None:
        """The group (session) level: a BM25 index over each group's concatenated tokens, mean vectors."""
        import bm25s

        self.group_bm25 = None
        self.group_vectors = None
        if self.settings.session_weight <= 0 or not self.docs:
            return
        bags: list[list[str]] = [[] for _ in range(self.n_groups)]
        for i, tokens in enumerate(self.tokens):
            bags[self.group_of[i]].extend(tokens)
        self.group_bm25 = bm25s.BM25(k1=self.settings.k1, b=self.settings.b)
        self.group_bm25.index([b or [""] for b in bags], show_progress=False)
        if self.vectors is not None:
            sums = np.zeros((self.n_groups, self.vectors.shape[1]), dtype=np.float64)
            np.add.at(sums, self.group_of, self.vectors)
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            self.group_vectors = (sums / np.where(norms == 0, 1.0, norms)).astype(np.float32)

    def _build_graph(self) -> None:
        """Items 0..n-1, entity nodes n..n+m-1; a column-stochastic ``(n+m, n+m)`` CSR matrix in ``self.walk``."""
        n, s = len(self.docs), self.settings
        term_docs: dict[str, set[int]] = {}
        for i, d in enumerate(self.docs):
            keys = set(self.tokens[i]) | {f"@{e}" for e in entities(d.text)}
            for key in keys:
                term_docs.setdefault(key, set()).add(i)
        max_df = max(2, int(s.entity_max_df * n))
        self.terms: dict[str, int] = {}
        rows, cols, vals = [], [], []
        for key, members in term_docs.items():
            if not 2 <= len(members) <= max_df or key.startswith("@") and key[1:] in self._speakers():
                continue
            node = n + len(self.terms)
            self.terms[key] = node
            w = math.log(n / len(members))  # idf: rarer shared terms carry more of the walk
            for i in members:
                rows += [i, node]
                cols += [node, i]
                vals += [w, w]
        if s.adjacency:
            by_group: dict[str, list[tuple[int, int]]] = {}
            for i, d in enumerate(self.docs):
                by_group.setdefault(d.group, []).append((d.seq, i))
            for members in by_group.values():
                members.sort()
                for (_, a), (_, b) in zip(members, members[1:], strict=False):
                    rows += [a, b]
                    cols += [b, a]
                    vals += [s.adjacency_weight * 4.0] * 2
        for i, d in enumerate(self.docs):
            for link in d.links:
                j = self.index.get(link)
                if j is not None and j != i:
                    rows += [i, j]
                    cols += [j, i]
                    vals += [s.link_weight * 4.0] * 2
        size = n + len(self.terms)
        adj = sp.csr_matrix((np.array(vals, dtype=np.float64), (rows, cols)), shape=(size, size))
        out = np.asarray(adj.sum(axis=0)).ravel()
        self._walks_on = out > 0  # a node with edges; the others are dead ends
        out[out == 0] = 1.0
        self.walk = (adj @ sp.diags(1.0 / out)).tocsr()  # column j divided by its out-weight

    def _speakers(self) -> set[str]:
        return set(self._speaker_ids)

    # -- channels

    def _bm25_scores(self, query: str) -> np.ndarray:
        tokens = tokenize(query, query=True)
        if not self.docs or not tokens:
            return np.zeros(len(self.docs), dtype=np.float32)
        ids = self.bm25.get_tokens_ids(tokens)
        if not ids:
            return np.zeros(len(self.docs), dtype=np.float32)
        return self.bm25.get_scores_from_ids(ids)

    def _dense_scores(self, query: str) -> np.ndarray | None:
        q = self._query_vector(query)
        return None if q is None else self.vectors @ q

    def _query_vector(self, query: str) -> np.ndarray | None:
        if self.vectors is None or self.embed is None or not self.docs:
            return None
        return np.asarray(self.embed([query]), dtype=np.float32)[0]

    def _focus(self, query: str) -> np.ndarray | float:
        """``(n,)`` score factors: 1 for the items of the one speaker the query names, ``speaker_focus`` for others.

        A memory question about a person ("What did Melanie paint?") is answered mostly by that person's own
        words; a capitalised query word naming a speaker, or a prefix of 3+ letters of it ("Mel"), counts.
        1.0 when the query names no speaker or several.
        """
        factor = self.settings.speaker_focus
        named = self._named_speakers(query)
        if factor >= 1.0 or len(named) != 1:
            return 1.0
        return np.where(self.speaker_of == self._speaker_ids[named[0]], 1.0, factor)

    def _named_speakers(self, query: str) -> list[str]:
        """The speakers a query names (a capitalised word equal to a speaker's name or a 3+ letter prefix)."""
        if not self._speakers():
            return []
        words = {w.lower().removesuffix("'s").removesuffix("’s") for w in re.findall(r"\b[A-Z][\w'’]+", query)}
        return sorted({sp for sp in self._speakers() for w in words
                       if len(w) >= 3 and (sp == w or sp.split()[0] == w or sp.startswith(w))})

    def _smooth(self, scores: np.ndarray) -> np.ndarray:
        """Neighbour smoothing of one channel's ``(n,)`` scores within each group (see :func:`smooth`)."""
        return smooth(scores, self.prev_q, self.next, self.settings.reply, self.settings.context)

    @staticmethod
    def _top(scores: np.ndarray, depth: int) -> list[int]:
        depth = min(depth, len(scores))
        if depth <= 0:
            return []
        part = np.argpartition(-scores, depth - 1)[:depth]
        part = part[scores[part] > 0]  # an item the channel does not match is not ranked by it
        return [int(i) for i in part[np.argsort(-scores[part], kind="stable")]]

    def lexical(self, query: str, k: int = 10) -> list[Hit]:
        """BM25 only, over the same enriched texts: the baseline. At most ``k`` distinct ids."""
        scores = self._bm25_scores(query)
        return [Hit(self.docs[i].id, float(scores[i]), {"bm25": float(scores[i])}) for i in self._top(scores, k)]

    def search(self, query: str, k: int = 10, *, now: datetime | None = None) -> list[Hit]:
        """The ``k`` best items for ``query`` (distinct ids, best first) with each channel's contribution.

        ``now`` is accepted for the service's interface (resolving "yesterday" in a query); unused by the ranking.
        """
        s, n = self.settings, len(self.docs)
        if n == 0 or k <= 0:
            return []
        focus = self._focus(query)
        if s.fusion == "convex":
            return self._convex(query, k, focus)
        bm25 = self._smooth(self._bm25_scores(query)) * focus
        channels: dict[str, list[int]] = {"bm25": self._top(bm25, s.depth)}
        weights = {"bm25": s.w_bm25, "dense": s.w_dense, "graph": s.w_graph}
        dense = self._dense_scores(query)
        if dense is not None:
            dense = self._smooth(np.maximum(dense, 0.0)) * focus
        if dense is not None and s.w_dense > 0:
            channels["dense"] = self._top(dense, s.depth)
        if s.temporal_boost and TEMPORAL_QUERY.search(query):
            # "When ...?": items that carry a date expression answer it; a small fourth ranking of the
            # dated items among the lexical+dense candidates, in their lexical order.
            cand = [i for i in channels["bm25"] if self.temporal[i]]
            channels["temporal"] = cand
            weights["temporal"] = 0.5
        names = list(channels)
        fused = rrf([channels[c] for c in names], k=s.rrf_k, weights=[weights[c] for c in names])
        if s.graph and s.w_graph > 0 and self.walk.shape[0] > 0:
            graph_rank = self._graph_ranking(fused, s.depth, focus)
            if graph_rank:
                names.append("graph")
                channels["graph"] = graph_rank
                fused = rrf([channels[c] for c in names], k=s.rrf_k, weights=[weights[c] for c in names])
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        positions = {c: {i: r for r, i in enumerate(channels[c], start=1)} for c in names}
        return [Hit(self.docs[i].id, float(score), {c: float(positions[c][i]) for c in names if i in positions[c]})
                for i, score in best]

    def _convex(self, query: str, k: int, focus: np.ndarray | float) -> list[Hit]:
        """Convex combination of max-normalised channel scores (Bruch et al. 2023), a second hop, then PPR."""
        s = self.settings
        qids = self._query_ids(query)
        qvec = self._query_vector(query)
        temporal = s.temporal_boost and bool(TEMPORAL_QUERY.search(query))
        counts: dict[int, float] = {}
        for t in qids:
            counts[t] = counts.get(t, 0.0) + 1.0  # a repeated query word counts twice, as in bm25s
        parts = self._channels(self._weighted_bm25(counts), qvec, focus, temporal)
        total = sum(parts.values())
        if s.prf_docs > 0 and s.prf_weight > 0 and total.max() > 0:
            # second hop: the lexical channel again, for the query expanded from the first hop's best items
            expanded = self._smooth(self._weighted_bm25(self._rm3(total, counts))) * focus
            parts["bm25"] = parts["bm25"] * (1.0 - s.prf_weight)
            parts["rm3"] = normalise(expanded) * s.w_bm25 * s.prf_weight
            total = sum(parts.values())
        if s.session_weight > 0:
            parts["session"] = s.session_weight * self._group_scores(query, qvec) * (total > 0)
            total = total + parts["session"]
        if s.graph and s.w_graph > 0:
            top = self._top(total, s.seeds)
            fused = {i: float(total[i]) for i in top}
            p = self._graph_scores(fused, focus)
            if p is not None:
                parts["graph"] = normalise(p) * s.w_graph
                total = total + parts["graph"]
        best = self._top(total, k)
        return [Hit(self.docs[i].id, float(total[i]), {c: float(v[i]) for c, v in parts.items()}) for i in best]

    def _query_ids(self, query: str) -> list[int]:
        tokens = tokenize(query, query=True)
        if not self.docs or not tokens:
            return []
        return list(self.bm25.get_tokens_ids(tokens))

    def _weighted_bm25(self, weights: dict[int, float]) -> np.ndarray:
        """``(n,)`` BM25 of a weighted bag of term ids: ``sum_t w_t * bm25(t, item)``."""
        if not weights:
            return np.zeros(len(self.docs), dtype=np.float64)
        ids = np.fromiter(weights, dtype=np.int64, count=len(weights))
        values = np.fromiter(weights.values(), dtype=np.float64, count=len(weights))
        return np.asarray(self._term_matrix[:, ids] @ values).ravel()

    def _channels(self, bm25_raw: np.ndarray, qvec: np.ndarray | None, focus: np.ndarray | float,
                  temporal: bool) -> dict[str, np.ndarray]:
        """The first-stage channels, each smoothed, focused and max-normalised: ``{name: (n,) scores}``."""
        s = self.settings
        bm25 = self._smooth(bm25_raw) * focus
        parts = {"bm25": normalise(bm25) * s.w_bm25}
        if qvec is not None and s.w_dense > 0:
            dense = self._smooth(np.maximum(self.vectors @ qvec, 0.0)) * focus
            parts["dense"] = normalise(dense, s.depth) * s.w_dense
        if temporal:
            parts["temporal"] = self.temporal * (0.1 * (parts["bm25"] > 0))
        return parts

    def _rm3(self, total: np.ndarray, query: dict[int, float]) -> dict[int, float]:
        """RM3 (Lavrenko & Croft 2001; Abdul-Jaleel et al. 2004): the query's term weights, expanded from feedback.

        The ``prf_docs`` best items of the first hop (``total``) are the feedback. A term's feedback weight is
        the sum over them of the item's first-hop score (max -> 1) times the term's BM25 weight in the item
        (so rare, repeated terms of the best items count most); the ``prf_terms`` best terms not in the query
        and not date words (the enrichment puts the session date in every item) get ``1 - prf_query_weight``
        of the mass, in proportion; the query's own terms share ``prf_query_weight``. ``query``: term id ->
        count. Evidence that shares no word with the question but shares the vocabulary of its best answers
        (the same topic, told in another session) is reached: "spreading activation" through content.
        """
        s = self.settings
        top = self._top(total, s.prf_docs)
        if not top or not query:
            return dict(query)
        w = total[top] / total[top].max()
        terms = np.asarray(self._doc_terms[top].T @ w).ravel()
        terms[list(query)] = 0.0
        terms[self._date_term] = 0.0
        count = min(s.prf_terms, terms.size)
        pick = np.argpartition(-terms, count - 1)[:count] if count > 0 else np.array([], dtype=np.int64)
        pick = pick[terms[pick] > 0]
        qmass = sum(query.values())
        weights = {t: s.prf_query_weight * c / qmass for t, c in query.items()}
        if pick.size:
            mass = float(terms[pick].sum())
            for t in pick:
                weights[int(t)] = (1.0 - s.prf_query_weight) * float(terms[t]) / mass
        return weights

    def _group_scores(self, query: str, qvec: np.ndarray | None) -> np.ndarray:
        """``(n,)``: the score of each item's group (session) for the query, in [0, 1].

        Two-stage "session then turn" retrieval, made soft: BM25 over the group's concatenated text plus the
        cosine with the group's mean vector (same weights as the item channels), max-normalised, broadcast
        to the group's items. A turn in a session about the question's topic is lifted, even when its own
        words are elsewhere in the session.
        """
        s = self.settings
        scores = np.zeros(self.n_groups, dtype=np.float64)
        if self.group_bm25 is None:
            return scores[self.group_of]
        tokens = tokenize(query, query=True)
        ids = self.group_bm25.get_tokens_ids(tokens) if tokens else []
        if ids:
            scores += s.w_bm25 * normalise(self.group_bm25.get_scores_from_ids(ids))
        if qvec is not None and self.group_vectors is not None and s.w_dense > 0:
            scores += s.w_dense * normalise(np.maximum(self.group_vectors @ qvec, 0.0))
        return normalise(scores)[self.group_of]

    def _graph_scores(self, fused: dict[int, float], focus: np.ndarray | float) -> np.ndarray | None:
        """``(n,)`` activation that spread to the items from the seeds ``fused`` (item index -> weight).

        Personalized PageRank seeded with the query's best hits (HippoRAG seeds with the query's entities; here
        the hits carry them, and seeding their nodes as well measured -0.007). Only the mass that arrived over
        edges is scored (``alpha * M p``): the mass sent back to the seeds (the restart, and a dead end's mass)
        would re-score the seeds, which the fused channels have ranked already (measured on LoCoMo: with it
        the channel changed no top 10; without it, +0.009 recall@10). None when nothing seeds the walk.
        """
        s, n = self.settings, len(self.docs)
        seeds = np.zeros(self.walk.shape[0], dtype=np.float64)
        for i, score in fused.items():
            seeds[i] += score
        total = seeds.sum()
        if total <= 0:
            return None
        # Ranking needs the order, not six digits: with alpha 0.5 the error halves each step, so 10 steps or an
        # L1 change under 1e-3 (a third of the time of 1e-6; the same recall on LoCoMo).
        p = personalized_pagerank(self.walk, seeds, alpha=s.alpha, steps=10, tol=1e-3)
        # p = alpha M p + (mass sent back to the seeds) s; a column of M sums to 1 unless a dead end's, so the
        # mass that walked an edge is alpha * p[walks on].sum(), and the rest went back: no second product.
        returned = 1.0 - s.alpha * float(p[self._walks_on].sum())
        spread = np.maximum(p - returned * seeds / total, 0.0)
        spread[~self._walks_on] = 0.0  # edges go both ways: nothing reaches a node without them (no rounding)
        return spread[:n] * focus

    def _graph_ranking(self, fused: dict[int, float], depth: int, focus: np.ndarray | float = 1.0) -> list[int]:
        """Items ranked by the activation spread from the fused top items (weighted by fused score)."""
        top = dict(sorted(fused.items(), key=lambda kv: -kv[1])[: self.settings.seeds])
        p = self._graph_scores(top, focus)
        return [] if p is None else self._top(p, depth)


def normalise(scores: np.ndarray, depth: int | None = None) -> np.ndarray:
    """``(n,)`` scores mapped to [0, 1]: max -> 1; with ``depth``, the depth-th best -> 0 (min-max over the top)."""
    if scores.size == 0:
        return scores
    high = float(scores.max())
    low = 0.0
    if depth is not None and depth < scores.size:
        low = float(np.partition(scores, scores.size - depth)[scores.size - depth])
    if high <= low:
        return np.zeros_like(scores, dtype=np.float64)
    return np.clip((scores - low) / (high - low), 0.0, None)


def neighbours(docs: Sequence[Doc]) -> tuple[np.ndarray, np.ndarray]:
    """For each doc, the index of the previous and next doc of its group by ``seq`` (-1 if none). Shapes ``(n,)``."""
    prev = np.full(len(docs), -1, dtype=np.int64)
    nxt = np.full(len(docs), -1, dtype=np.int64)
    by_group: dict[str, list[tuple[int, int]]] = {}
    for i, d in enumerate(docs):
        by_group.setdefault(d.group, []).append((d.seq, i))
    for members in by_group.values():
        members.sort()
        for (_, a), (_, b) in zip(members, members[1:], strict=False):
            nxt[a], prev[b] = b, a
    return prev, nxt


def smooth(scores: np.ndarray, prev: np.ndarray, nxt: np.ndarray, reply: float, context: float) -> np.ndarray:
    """``s'(i) = s(i) + reply * s(prev(i)) + context * s(next(i))``: time-adjacency expansion of one channel.

    In a dialogue the answer is often the turn after the one that matches the question's words ("How did they
    handle it?" -> "They were scared but ..."), and a short reply borrows its topic from its neighbours.
    Shapes: ``(n,)`` scores, ``(n,)`` neighbour indices (-1 = none). A cheap, vectorised form of the
    adjacency edges of the memory graph.
    """
    if reply == 0 and context == 0:
        return scores
    padded = np.append(scores, 0.0)
    return scores + reply * padded[prev] + context * padded[nxt]


def _is_date_token(token: str) -> bool:
    """A token of the enriched date text (``"7 May 2023"``, ``"shortly before"``, ``"week of"``): a number,
    a month name, or a word of the resolved-date phrases (:func:`resolve_dates`)."""
    return token.isdigit() or token in _DATE_WORDS


_DATE_WORDS = frozenset(tokenize(" ".join(MONTHS) + " shortly before after week weekend of"))
_EXPLICIT_DATE = re.compile(r"\b(19|20)\d\d\b|\b(" + "|".join(MONTHS) + r")\b")
