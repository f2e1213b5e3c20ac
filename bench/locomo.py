"""Bench (issue 8, a): LoCoMo evidence recall of ``search_memory``, through the real memory stores.

Usage: ``python bench/locomo.py DATA_FILE [--json OUT]``. Last line: ``overall recall@10: 0.xxx``.

Each conversation is one Anima's isolated memory. Every turn is written as an episode by the real
:class:`~orgctl.memory.stores.MemoryStore` (``append_episode``: one ``## HH:MM:SS message`` section, the
turn quoted as ``<speaker> (chat): <text>``, an image as ``[shares a photo of …]``, on the session's day
and time), so nothing reaches the index that the runtime would not write. The index is the product's
(:class:`~orgctl.memory.index.MemoryIndex`: items parsed from the files, vectors from the real MiniLM int8
embedder stored in a real Chroma store, the hybrid ranking), and each question of categories 1-4 with
evidence is asked through its ``search`` (what ``search_memory`` answers). Recall@k: the share of a
question's evidence turns among the top k distinct turns, averaged per category and overall, beside a
BM25-only baseline over the same items (``lexical=True``) in the same run. Data quirks (README of the
data): questions without evidence are skipped and counted; malformed ids are split and normalised; ids
that point at no turn are dropped and counted. Nothing is tuned to question ids or answers.
Recorded in bench/results/locomo.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from locomo_research import CATEGORIES, SKIPS, gold_questions, turn_text  # noqa: E402
from orgs import record_result  # noqa: E402

from orgctl.memory.embedding import Embedder  # noqa: E402
from orgctl.memory.index import MemoryIndex, VectorStore, collect_docs  # noqa: E402
from orgctl.memory.ranking import parse_when  # noqa: E402
from orgctl.memory.stores import MemoryStore  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "locomo.json"
KS = (5, 10)
GOAL = 0.85


def ingest(store: MemoryStore, conversation: dict) -> dict[str, str]:
    """Write every turn as an episode; returns ``{item id: dia_id}``."""
    numbers = sorted(int(m.group(1)) for key in conversation if (m := re.fullmatch(r"session_(\d+)", key)))
    written: dict[str, list[str]] = defaultdict(list)  # episode file -> dia_ids in the order written
    for n in numbers:
        start = parse_when(conversation.get(f"session_{n}_date_time", "")) or datetime(2000, 1, 1)
        for seq, turn in enumerate(conversation[f"session_{n}"]):
            at = start + timedelta(seconds=seq)
            speaker = re.sub(r"[^A-Za-z0-9._-]", "", turn.get("speaker", "")) or "someone"
            store.append_episode(day=at.date(), markdown=f"## {at:%H:%M:%S} message\n\n"
                                                         f"- Observed: {speaker} (chat): {turn_text(turn)}",
                                 record={"at": at.isoformat(), "trigger": "message", "dia_id": turn["dia_id"],
                                         "observed": [f"{speaker} (chat)"], "did": []})
            written[f"episodes/{at.date().isoformat()}.md"].append(turn["dia_id"])
    mapping = {}
    by_file: dict[str, list[str]] = defaultdict(list)
    for doc in collect_docs(store.root):
        by_file[doc.group].append(doc.id)
    for rel, ids in by_file.items():
        for item, dia in zip(ids, written[rel], strict=True):
            mapping[item] = dia
    return mapping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    data = json.loads(args.data.read_text())
    embedder = Embedder()
    recall: dict[str, dict[int, dict[int, list[float]]]] = {
        m: defaultdict(lambda: {k: [] for k in KS}) for m in ("hybrid", "bm25")}
    skipped = dict.fromkeys(SKIPS, 0)
    started = time.monotonic()
    search_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="locomo-") as tmp:
        vectors = VectorStore(Path(tmp) / "chroma", embed=embedder.embed)
        for n, sample in enumerate(data):
            name = f"conv{n}"
            store = MemoryStore(Path(tmp) / name / "memory", anima=name)
            mapping = ingest(store, sample["conversation"])
            index = MemoryIndex(name, store.root, vectors=vectors, embed_query=embedder.embed)
            index.refresh()
            known = set(mapping.values())
            for question, category, valid in gold_questions(sample, known, skipped):
                for method, lexical in (("hybrid", False), ("bm25", True)):
                    t0 = time.perf_counter()
                    found = index.search(question, k=max(KS), lexical=lexical)
                    if not lexical:
                        search_times.append(time.perf_counter() - t0)
                    turns = list(dict.fromkeys(mapping[r.id] for r in found if r.id in mapping))
                    for k in KS:
                        hit = len(set(turns[:k]) & set(valid)) / len(valid)
                        recall[method][category][k].append(hit)
            print(f"{name}: {len(mapping)} turns, {sum(len(v[10]) for v in recall['hybrid'].values())} "
                  f"questions so far", file=sys.stderr)
    table = {}
    for method in ("hybrid", "bm25"):
        rows = recall[method]
        table[method] = {CATEGORIES[c]: {f"recall@{k}": round(sum(rows[c][k]) / len(rows[c][k]), 3) for k in KS}
                         | {"n": len(rows[c][10])} for c in sorted(rows)}
        every = {k: [v for c in rows for v in rows[c][k]] for k in KS}
        table[method]["overall"] = {f"recall@{k}": round(sum(every[k]) / len(every[k]), 3) for k in KS} \
            | {"n": len(every[10])}
    search_times.sort()
    record = {"bench": "locomo", "data": args.data.name, "conversations": len(data), "results": table,
              "skipped": skipped, "search_ms": {"p50": round(1000 * search_times[len(search_times) // 2], 1),
                                                "p95": round(1000 * search_times[int(len(search_times) * .95)], 1)},
              "seconds": round(time.monotonic() - started, 1), "goal_recall_at_10": GOAL}
    record_result(args.json, record)
    print(f"LoCoMo {args.data.name}: {len(data)} conversations, skipped {skipped}, "
          f"search p50 {record['search_ms']['p50']} ms, p95 {record['search_ms']['p95']} ms")
    print(f"{'category':<12} {'n':>5} {'hybrid R@5':>11} {'R@10':>7} {'BM25 R@5':>9} {'R@10':>7}")
    for cat in table["hybrid"]:
        h, b = table["hybrid"][cat], table["bm25"][cat]
        print(f"{cat:<12} {h['n']:>5} {h['recall@5']:>11.3f} {h['recall@10']:>7.3f} {b['recall@5']:>9.3f} "
              f"{b['recall@10']:>7.3f}")
    print(f"BM25-only recall@10: {table['bm25']['overall']['recall@10']:.3f}")
    print(f"overall recall@10: {table['hybrid']['overall']['recall@10']:.3f}")


if __name__ == "__main__":
    main()
