"""Memory: each Anima's stores, the org's search index, priming, and the passes that commit them.

Data flows one way through the package: :mod:`.stores` and :mod:`.notes` (the files, one writer per
Anima under its memory lock) -> :mod:`.consolidation` and :mod:`.passes` (consolidate, compress,
forget: one commit per pass in the runtime's clone) and :mod:`.batches` (episodes between passes);
:mod:`.index` (items, vectors in Chroma, :mod:`.ranking`) -> :mod:`.priming` and :mod:`.service`
(search and priming for the whole org, in one process); :mod:`.review` reads the history back.
docs/memory.md is the user's view.
"""

MEMORY_DIRS = ("episodes", "knowledge", "procedures", "state", "shortterm", "activity_log")
"""The memory folders every Anima has (as AnimaWorks users know them; skills are spec, in ``animas/<name>/skills/``)."""
