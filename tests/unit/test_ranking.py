"""orgctl.memory.ranking: dates, fusion, PPR, and Ranker.search's contract. Fast, no model."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime

import networkx as nx
import numpy as np
import scipy.sparse as sp

from orgctl.memory.ranking import (
    Doc,
    Ranker,
    Settings,
    enrich,
    entities,
    personalized_pagerank,
    resolve_dates,
    rrf,
    stem,
    tokenize,
)

MAY_8 = datetime(2023, 5, 8, 13, 56)  # a Monday


def resolved(text: str, when: datetime = MAY_8) -> dict[str, str]:
    return dict(resolve_dates(text, when))


def test_resolve_yesterday_and_weekdays() -> None:
    assert resolved("I went yesterday")["yesterday"] == "7 May 2023"
    assert resolved("we met last Saturday")["last saturday"] == "6 May 2023"
    assert resolved("see you next Friday")["next friday"] == "12 May 2023"
    assert resolved("on Monday I ran")["on monday"] == "1 May 2023"  # a past bare weekday: the one before


def test_resolve_weeks_months_years() -> None:
    assert resolved("two weeks ago")["two weeks ago"] == "week of 24 April 2023"
    assert resolved("last week")["last week"] == "week of 1 May 2023"
    assert resolved("next month")["next month"] == "June 2023"
    assert resolved("in December, next month", datetime(2023, 12, 3))["next month"] == "January 2024"
    assert resolved("3 days ago")["3 days ago"] == "5 May 2023"
    assert resolved("last year")["last year"] == "2022"


def test_resolve_without_date_or_expression() -> None:
    assert resolve_dates("yesterday", None) == []
    assert resolve_dates("I love painting", MAY_8) == []


def test_enrich_is_deterministic_and_adds_speaker_and_dates() -> None:
    doc = Doc("D1:3", "I went to a support group yesterday.", "episode", MAY_8, "s1", 2, "Caroline")
    text = enrich(doc)
    assert text == enrich(doc)
    assert text.startswith("Caroline (8 May 2023):")
    assert "7 May 2023" in text


def test_tokenize_and_stem() -> None:
    assert stem("paintings") == stem("painted") == stem("painting") == "paint"
    assert tokenize("I won the tournaments") == ["win", "tournament"]
    assert "destress" in tokenize("running to de-stress")
    assert entities("I met Jon at Lake Tahoe. Paris was great!") == ["jon", "lake tahoe", "paris"]


def test_rrf_order() -> None:
    fused = rrf([[1, 2, 3], [2, 3, 1], [2, 1]], k=60)
    assert sorted(fused, key=lambda i: -fused[i]) == [2, 1, 3]
    assert abs(fused[3] - (1 / 63 + 1 / 62)) < 1e-12
    weighted = rrf([[1, 2], [2, 1]], k=60, weights=[1.0, 0.1])
    assert weighted[1] > weighted[2]


def test_ppr_matches_networkx() -> None:
    graph = nx.Graph([(0, 1), (1, 2), (2, 3), (3, 0), (2, 4)])
    nodes = sorted(graph)
    adj = nx.to_scipy_sparse_array(graph, nodelist=nodes, format="csr").astype(float)
    walk = sp.csr_matrix(adj / adj.sum(axis=0))  # column-stochastic
    seeds = np.array([1.0, 0, 0, 0, 0])
    ours = personalized_pagerank(walk, seeds, alpha=0.85, steps=200, tol=1e-12)
    ref = nx.pagerank(graph, alpha=0.85, personalization={0: 1.0}, tol=1e-12, max_iter=500)
    assert np.allclose(ours, [ref[n] for n in nodes], atol=1e-6)


def _docs() -> list[Doc]:
    texts = [
        ("Alice", "I adopted a puppy named Biscuit from the shelter."),
        ("Bob", "Nice! How is the weather over there?"),
        ("Alice", "Rainy as usual, I stayed home."),
        ("Bob", "Biscuit chewed my favourite shoes today."),  # reachable only through the entity "biscuit"
        ("Alice", "My sister works as a nurse in Boston."),
        ("Bob", "I started a pottery class."),
    ]
    return [Doc(f"d{i}", text, "episode", MAY_8, f"s{i}", 0, speaker)  # one group each: no adjacency
            for i, (speaker, text) in enumerate(texts)]


def test_ppr_reaches_a_doc_through_a_shared_entity() -> None:
    docs = _docs()
    query = "Where was the puppy adopted from?"
    lexical = [h.id for h in Ranker(docs, None, None).lexical(query, k=10)]
    assert lexical[0] == "d0" and "d3" not in lexical  # no query word in d3
    only_graph = Settings(seeds=1, speaker_focus=1.0, prf_docs=0, session_weight=0.0)  # the other hops off
    hits = Ranker(docs, None, None, settings=only_graph).search(query, k=3)
    ids = [h.id for h in hits]
    assert ids[0] == "d0" and "d3" in ids
    assert "graph" in next(h for h in hits if h.id == "d3").channels
    without = Ranker(docs, None, None, settings=Settings(graph=False, reply=0, context=0, prf_docs=0,
                                                         session_weight=0.0)).search(query, k=3)
    assert "d3" not in [h.id for h in without]


def test_rm3_second_hop_reaches_a_doc_through_the_best_hits_words() -> None:
    docs = _docs()
    query = "Where was the puppy adopted from?"
    plain = Settings(graph=False, reply=0, context=0, session_weight=0.0, speaker_focus=1.0)
    first_hop = [h.id for h in Ranker(docs, None, None, settings=replace(plain, prf_docs=0)).search(query, k=3)]
    assert first_hop == ["d0"]  # no query word in d3
    hits = Ranker(docs, None, None, settings=plain).search(query, k=3)
    assert hits[0].id == "d0"
    d3 = next(h for h in hits if h.id == "d3")  # "Biscuit", a rare word of the best hit, is the second hop
    assert d3.channels["rm3"] > 0 and d3.channels["bm25"] == 0


def test_session_level_score_lifts_the_turns_of_a_session_about_the_topic() -> None:
    texts = [("s1", "We drove to the lake for a fishing trip."), ("s1", "I caught a big trout there."),
             ("s1", "The boat was great."), ("s2", "The boat was fine."), ("s2", "We ate pizza after.")]
    docs = [Doc(f"d{i}", text, "episode", MAY_8, group, i, "Ann") for i, (group, text) in enumerate(texts)]
    query = "the boat on the fishing trip at the lake"
    plain = Settings(graph=False, reply=0, context=0, prf_docs=0, session_weight=0.0)
    lexical = Ranker(docs, None, None, settings=plain)
    scores = {h.id: h.score for h in lexical.search(query, k=5)}
    assert abs(scores["d2"] - scores["d3"]) < 1e-6  # "boat" alone, the same length: a tie without sessions
    hits = Ranker(docs, None, None, settings=replace(plain, session_weight=0.5)).search(query, k=5)
    ids = [h.id for h in hits]
    assert ids.index("d2") < ids.index("d3")  # d2's session is about the lake and the fishing trip
    assert hits[ids.index("d2")].channels["session"] > hits[ids.index("d3")].channels["session"]


def _bag_of_words_embed(vocabulary: list[str]):
    def embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(vocabulary)), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                if word in vocabulary:
                    out[row, vocabulary.index(word)] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)
    return embed


def test_search_returns_at_most_k_distinct_ids() -> None:
    docs = _docs() * 1  # the same ids must never repeat in a result
    vocabulary = sorted({w for d in docs for w in re.findall(r"[a-z]+", d.text.lower())})
    embed = _bag_of_words_embed(vocabulary)
    ranker = Ranker(docs, embed([d.text for d in docs]), embed)
    for k in (1, 3, 10):
        hits = ranker.search("Biscuit the puppy and the pottery class", k=k)
        ids = [h.id for h in hits]
        assert len(ids) == len(set(ids)) <= k
        assert all(isinstance(h.score, float) for h in hits)
    assert ranker.search("", k=5) == [] or len(ranker.search("", k=5)) <= 5
    assert Ranker([], None, None).search("anything") == []


def test_add_extends_the_memory() -> None:
    docs = _docs()
    ranker = Ranker(docs[:3], None, None)
    assert "d4" not in [h.id for h in ranker.lexical("nurse Boston")]
    ranker.add(docs[3:])
    assert [h.id for h in ranker.lexical("nurse Boston")][0] == "d4"


def test_graph_channel_scores_only_activation_that_spread() -> None:
    """The graph channel is the mass that arrived over an edge (``alpha * M p``), not the walk's restart mass:
    a seed with no edges gets nothing, an item linked through a shared rare entity does."""
    docs = _docs()
    ranker = Ranker(docs, None, None, settings=Settings(speaker_focus=1.0))
    index = {d.id: i for i, d in enumerate(docs)}
    seeds = {index["d0"]: 2.0, index["d5"]: 1.0}  # d5 ("pottery class") shares no word, in its own group
    spread = ranker._graph_scores(seeds, 1.0)
    assert spread is not None
    assert spread[index["d5"]] == 0
    assert spread[index["d3"]] > 0  # through "biscuit"
    vector = np.zeros(ranker.walk.shape[0])
    for i, weight in seeds.items():
        vector[i] = weight
    alpha = ranker.settings.alpha
    converged = personalized_pagerank(ranker.walk, vector, alpha=alpha, steps=500, tol=1e-14)
    arrived = alpha * (ranker.walk @ converged)
    assert np.allclose(spread, arrived[: len(docs)], atol=1e-3)
    assert spread[index["d0"]] > 0.01  # a seed with edges gets back what came round to it
