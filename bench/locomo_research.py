"""LoCoMo turn-level evidence recall of orgctl's memory ranking (research bench).

Usage: ``python bench/locomo_research.py DATA_FILE [--ablations] [--grid] [--no-latency]``

One :class:`~orgctl.memory.ranking.Ranker` per conversation (each conversation is one isolated memory), one
:class:`Doc` per turn built only from what a memory store holds for a turn: speaker, text, image caption
(rendered ``[shares a photo of ...]``) and the session's date-time. Every question of categories 1-4 with
valid evidence is asked; recall@k = fraction of its evidence turns among the top k distinct turns, averaged
per category and overall. Prints the hybrid ranking and the BM25-only baseline (``Ranker.lexical``), the
two-halves check (the first two conversations against the rest: a parameter that only helps one half is
overfitted), optional ablations and parameter grid, and the ``search`` latency over a synthetic 10,000-item
memory. Last line: ``overall recall@10: x``.

Turn and question vectors are cached in ``/tmp/locomo_vectors_*.npy`` (keyed by a hash of the texts).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orgctl.memory.ranking import Doc, Ranker, Settings, embedding_text, parse_when  # noqa: E402

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "inference", 4: "single-hop"}
KS = (5, 10)


def turn_text(turn: dict) -> str:
    """The turn as a memory store would write it: its text, then its image caption if any."""
    text = turn.get("text", "")
    caption = (turn.get("blip_caption") or "").strip()
    if caption:
        caption = re.sub(r"^(a )?(photo|picture|image) of ", "", caption)
        text = f"{text} [shares a photo of {caption}]"
    return text


def conversation_docs(conversation: dict) -> list[Doc]:
    """One Doc per turn of every session (any number of sessions), in session order."""
    numbers = sorted(int(m.group(1)) for key in conversation if (m := re.fullmatch(r"session_(\d+)", key)))
    docs = []
    for n in numbers:
        when = parse_when(conversation.get(f"session_{n}_date_time", ""))
        for seq, turn in enumerate(conversation[f"session_{n}"]):
            docs.append(Doc(id=turn["dia_id"], text=turn_text(turn), kind="episode", when=when,
                            group=f"session_{n}", seq=seq, speaker=turn.get("speaker", "")))
    return docs


def normalise_evidence(evidence: list[str]) -> list[str]:
    """``'D8:6; D9:17'`` -> two ids; ``'D:11:26'`` -> ``'D11:26'``; ``'D30:05'`` -> ``'D30:5'``; junk dropped."""
    out = []
    for item in evidence:
        for part in re.split(r"[;,\s]+", str(item)):
            m = re.fullmatch(r"D:?(\d+):(\d+)", part.strip())
            if m:
                out.append(f"D{int(m.group(1))}:{int(m.group(2))}")
    return list(dict.fromkeys(out))


SKIPS = ("no evidence", "evidence ids not in the conversation", "partly unknown ids")


def gold_questions(sample: dict, known: set[str], skipped: dict[str, int] | None = None
                   ) -> list[tuple[str, int, set[str]]]:
    """``(question, category, evidence turn ids)`` of every question of categories 1-4 whose evidence names a
    turn of the conversation (``known``), with the data's quirks handled (README); ``skipped`` counts the rest
    under :data:`SKIPS` (a question with some unknown ids is kept with the ids that exist, and counted)."""
    skipped = skipped if skipped is not None else dict.fromkeys(SKIPS, 0)
    out = []
    for qa in sample["qa"]:
        if qa.get("category") not in CATEGORIES:
            continue
        evidence = normalise_evidence(qa.get("evidence") or [])
        if not evidence:
            skipped["no evidence"] += 1
            continue
        valid = [e for e in evidence if e in known]
        if not valid:
            skipped["evidence ids not in the conversation"] += 1
            continue
        if len(valid) < len(evidence):
            skipped["partly unknown ids"] += 1
        out.append((str(qa["question"]), int(qa["category"]), set(valid)))
    return out


class VectorCache:
    """Embeds texts once and keeps them in /tmp/locomo_vectors_<name>_<hash>.npy."""

    def __init__(self) -> None:
        self._embedder = None

    def embedder(self):
        if self._embedder is None:
            from orgctl.memory.embedding import Embedder

            self._embedder = Embedder()
        return self._embedder

    def vectors(self, name: str, texts: list[str]) -> np.ndarray:
        digest = hashlib.sha1("\x00".join(texts).encode()).hexdigest()[:12]
        path = Path(f"/tmp/locomo_vectors_{name}_{digest}.npy")
        if path.exists():
            return np.load(path)
        vectors = self.embedder().embed(texts)
        np.save(path, vectors)
        return vectors


def lookup_embed(texts: list[str], table: dict[str, np.ndarray]):
    """An ``embed`` function answering from precomputed query vectors."""
    def embed(queries: list[str]) -> np.ndarray:
        return np.stack([table[q] for q in queries])
    del texts
    return embed


def evaluate(data: list[dict], cache: VectorCache, configs: dict[str, Settings | None]) -> dict:
    """``{config: {category: {k: [recall per question]}}}``; ``None`` settings = BM25 baseline."""
    results: dict[str, dict[int, dict[int, list[float]]]] = {
        name: defaultdict(lambda: defaultdict(list)) for name in configs}
    owner: dict[int, list[int]] = defaultdict(list)  # category -> sample index of each recall, in order
    skipped = dict.fromkeys(SKIPS, 0)
    for index, sample in enumerate(data):
        docs = conversation_docs(sample["conversation"])
        known = {d.id for d in docs}
        vectors = cache.vectors(sample["sample_id"], [embedding_text(d) for d in docs])
        questions = gold_questions(sample, known, skipped)
        for _, category, _ in questions:
            owner[category].append(index)
        qtexts = [q for q, _, _ in questions]
        qvectors = cache.vectors(f"{sample['sample_id']}_questions", qtexts)
        embed = lookup_embed(qtexts, dict(zip(qtexts, qvectors, strict=True)))
        rankers: dict[int, Ranker] = {}
        for name, settings in configs.items():
            key = id(settings)
            if key not in rankers:
                rankers[key] = Ranker(docs, vectors, embed, settings=settings or Settings())
            ranker = rankers[key]
            for question, category, gold in questions:
                hits = ranker.lexical(question, k=max(KS)) if settings is None else ranker.search(question, k=max(KS))
                ids = [h.id for h in hits]
                assert len(set(ids)) == len(ids) <= max(KS)
                for k in KS:
                    results[name][category][k].append(len(gold & set(ids[:k])) / len(gold))
    return {"results": results, "skipped": skipped, "owner": owner}


def halves(per_cat: dict[int, dict[int, list[float]]], owner: dict[int, list[int]],
           split: int = 2) -> tuple[float, float]:
    """Overall recall@10 of conversations ``< split`` and ``>= split`` (the two-halves check)."""
    first = [v for c in per_cat for v, o in zip(per_cat[c][10], owner[c], strict=True) if o < split]
    rest = [v for c in per_cat for v, o in zip(per_cat[c][10], owner[c], strict=True) if o >= split]
    return float(np.mean(first)) if first else float("nan"), float(np.mean(rest)) if rest else float("nan")


def summary(per_cat: dict[int, dict[int, list[float]]]) -> dict[str, dict[int, float]]:
    out = {CATEGORIES[c]: {k: float(np.mean(per_cat[c][k])) for k in KS} for c in sorted(per_cat)}
    out["overall"] = {k: float(np.mean([v for c in per_cat for v in per_cat[c][k]])) for k in KS}
    return out


def print_table(name: str, per_cat: dict[int, dict[int, list[float]]]) -> dict[str, dict[int, float]]:
    table = summary(per_cat)
    counts = {CATEGORIES[c]: len(per_cat[c][KS[0]]) for c in per_cat}
    counts["overall"] = sum(counts.values())
    print(f"\n{name}")
    print(f"  {'category':<12} {'n':>5} {'R@5':>7} {'R@10':>7}")
    for cat, row in table.items():
        print(f"  {cat:<12} {counts[cat]:>5} {row[5]:>7.3f} {row[10]:>7.3f}")
    return table


def latency(data: list[dict], items: int = 10_000, queries: int = 300) -> tuple[float, float, float]:
    """p50/p95 of ``search`` (query embedding excluded) over a synthetic memory of ``items`` items.

    The items are the data file's turns replayed with shifted dates and fresh ids until ``items``, so the
    vocabulary and entity statistics are realistic; vectors are random unit vectors (same cost as real ones).
    Returns (build seconds, p50 ms, p95 ms).
    """
    base = [d for sample in data for d in conversation_docs(sample["conversation"])]
    docs = []
    rng = np.random.default_rng(0)
    copy = 0
    while len(docs) < items:
        for d in base:
            if len(docs) >= items:
                break
            when = None if d.when is None else d.when.replace(year=d.when.year + copy)
            docs.append(replace(d, id=f"c{copy}/{d.id}", group=f"c{copy}/{d.group}", when=when))
        copy += 1
    vectors = rng.standard_normal((len(docs), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    qvec = {}

    def embed(texts: list[str]) -> np.ndarray:  # a stand-in: the real query embedding (~5 ms) is excluded
        return np.stack([qvec.setdefault(t, vectors[hash(t) % len(docs)]) for t in texts])

    start = time.perf_counter()
    ranker = Ranker(docs, vectors, embed)
    build = time.perf_counter() - start
    questions = [qa["question"] for sample in data for qa in sample["qa"]][:queries]
    for q in questions[:20]:
        ranker.search(q)  # warm-up
    times = []
    for q in questions:
        start = time.perf_counter()
        ranker.search(q, k=10)
        times.append((time.perf_counter() - start) * 1000)
    return build, float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--ablations", action="store_true", help="also run the ablations")
    parser.add_argument("--grid", action="store_true", help="also run the grid of the second hop and session level")
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args()
    data = json.loads(args.data.read_text())

    default = Settings()
    configs: dict[str, Settings | None] = {"BM25 only (enriched text)": None, "hybrid": default}
    if args.ablations:
        configs.update({
            "BM25 only, no enrichment": Settings(enrich=False),  # scored by Ranker.lexical, see below
            "hybrid - enrichment (dates, speaker)": replace(default, enrich=False),
            "hybrid - dense": replace(default, w_dense=0.0),
            "hybrid - second hop (RM3 feedback)": replace(default, prf_docs=0),
            "hybrid - session-level score": replace(default, session_weight=0.0),
            "hybrid - RM3 - session level (the previous hybrid)": replace(default, prf_docs=0, session_weight=0.0),
            "hybrid - graph (PPR)": replace(default, graph=False),
            "hybrid - adjacency edges in the graph": replace(default, adjacency=False),
            "hybrid - neighbour smoothing": replace(default, reply=0.0, context=0.0),
            "hybrid - speaker focus": replace(default, speaker_focus=1.0),
            "hybrid - temporal intent": replace(default, temporal_boost=False),
            "hybrid with RRF (k=60) instead of convex fusion": replace(default, fusion="rrf"),
            "dense only": replace(default, w_bm25=0.0, graph=False, temporal_boost=False, reply=0.0, context=0.0,
                                  speaker_focus=1.0, prf_docs=0, session_weight=0.0),
            "BM25 + dense RRF, nothing else": replace(default, fusion="rrf", w_dense=1.0, graph=False,
                                                      temporal_boost=False, reply=0.0, context=0.0,
                                                      speaker_focus=1.0),
        })
    if args.grid:
        for docs in (5, 10, 20):
            for weight in (0.1, 0.2, 0.3):
                configs[f"grid: prf_docs={docs} session_weight={weight}"] = replace(
                    default, prf_docs=docs, session_weight=weight)
        for terms in (5, 20):
            configs[f"grid: prf_terms={terms}"] = replace(default, prf_terms=terms)
        for weight in (0.3, 0.7):
            configs[f"grid: prf_weight={weight}"] = replace(default, prf_weight=weight)
    lexical_only = {"BM25 only, no enrichment"}
    results = evaluate_configs(data, configs, lexical_only)
    tables = {name: print_table(name, per_cat) for name, per_cat in results["results"].items()
              if not name.startswith("grid: ")}
    print(f"\nquestions skipped or trimmed: {results['skipped']}")
    split = min(2, len(data) - 1)
    print(f"\nrecall@10 overall / conversations 0-{split - 1} / conversations {split}-{len(data) - 1} "
          f"(the two-halves check)")
    for name, per_cat in results["results"].items():
        if name in lexical_only:
            continue
        first, rest = halves(per_cat, results["owner"], split)
        print(f"  {name:<58} {summary(per_cat)['overall'][10]:.3f} / {first:.3f} / {rest:.3f}")
    if not args.no_latency:
        build, p50, p95 = latency(data)
        print(f"\n10k-item memory: build {build:.2f} s, search p50 {p50:.1f} ms, p95 {p95:.1f} ms "
              f"(query embedding excluded)")
    print(f"\noverall recall@10: {tables['hybrid']['overall'][10]:.3f}")


def evaluate_configs(data: list[dict], configs: dict[str, Settings | None], lexical_only: set[str]) -> dict:
    """:func:`evaluate`, where the configs named in ``lexical_only`` are scored by ``Ranker.lexical``."""
    cache = VectorCache()
    plain = {name: s for name, s in configs.items() if name not in lexical_only}
    out = evaluate(data, cache, plain)
    for name in lexical_only & configs.keys():
        settings = configs[name]
        lex = evaluate_lexical(data, settings)
        out["results"][name] = lex
    return out


def evaluate_lexical(data: list[dict], settings: Settings | None) -> dict[int, dict[int, list[float]]]:
    """BM25-only recall with the given settings (e.g. without enrichment)."""
    per_cat: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sample in data:
        docs = conversation_docs(sample["conversation"])
        known = {d.id for d in docs}
        ranker = Ranker(docs, None, None, settings=settings)
        for question, category, gold in gold_questions(sample, known):
            ids = [h.id for h in ranker.lexical(question, k=max(KS))]
            for k in KS:
                per_cat[category][k].append(len(gold & set(ids[:k])) / len(gold))
    return per_cat


if __name__ == "__main__":
    main()
