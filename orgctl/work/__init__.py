"""WORK IN FLIGHT (DESIGN §2): inboxes, task queues, the Board, approvals.

Durable files under ``<state>/work/``, written by the runtime and by the
commands people use to hand it work (``orgctl task add``, ``send``,
``board post``, ``approve``). Never in git, never in a person's checkout.
Every store here is plain files with one atomic step of acceptance
(a rename, or one ``O_APPEND`` write), so a SIGKILL loses nothing accepted.
"""
