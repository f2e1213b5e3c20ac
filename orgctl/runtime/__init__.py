"""Backends that run Animas, and the Anima's own loop.

* :mod:`~orgctl.runtime.local` — the local backend ``apply`` drives: it starts
  and talks to the supervisor.
* :mod:`~orgctl.runtime.supervisor` — one daemon per org: one child process
  per Anima, restarts with exponential backoff, hosts the model gateway.
* :mod:`~orgctl.runtime.anima` — the Anima process: heartbeat timer, signals.
* :mod:`~orgctl.runtime.cycle` — one agent cycle (Observe -> Plan -> Reflect).

The Anima process imports only the standard library, pydantic and the small
modules it needs (never litellm): model calls go to the supervisor's gateway.
"""
