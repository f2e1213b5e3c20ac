"""DESIRED state: the org repo as pydantic models, loaded from a work tree or any git revision.

Public entry point: :func:`orgctl.desired.loading.load_org`. It returns an
:class:`~orgctl.desired.models.OrgSpec` or raises :class:`~orgctl.errors.SpecError`
carrying every problem found, each with file, line and reason.
"""
