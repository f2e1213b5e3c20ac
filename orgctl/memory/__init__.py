"""Memory: the Anima's stores under ``animas/<name>/memory/`` and the passes over them.

Only orgctl writes here. Each store has one writer: the Anima process
appends episodes and activity; a consolidation pass writes knowledge and
commits, through :mod:`orgctl.gitops.repos`, one commit per pass.
"""

MEMORY_DIRS = ("episodes", "knowledge", "procedures", "skills", "state", "shortterm", "activity_log")
"""The memory folders every Anima has (as AnimaWorks users know them)."""
