"""Model routing, the embedded local model server, structured calls and token accounting.

Only :mod:`~orgctl.llm.gateways` imports litellm, and only when it is
constructed; the request/answer types in :mod:`~orgctl.llm.requests` and
:mod:`~orgctl.llm.structured` are light enough for Anima processes.
"""
