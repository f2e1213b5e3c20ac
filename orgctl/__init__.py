"""orgctl: run an organization of LLM agents ("Animas") from a git repository.

Data flows one way, and each step is a package that imports only the steps
before it (plus the small shared modules at this level: ``errors``, ``paths``)::

    desired (the spec, git) -> gitops (plan/apply) -> state (observed)
        -> runtime (supervisor, Anima loop) -> llm / memory -> commit

This module imports nothing: the Anima child processes import ``orgctl`` and
must stay lean (see ROADMAP: <= 25 MB resident per idle Anima).
"""

__version__ = "0.1.0"
