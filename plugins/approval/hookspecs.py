"""Hooks the approval plugin offers to other plugins (loaded by the core's plugin manager)."""
from core.plugins.markers import hookspec


@hookspec
def approval_decided(request, outcome):
    """A request has ended.

    ``request`` is the ``plugins.approval.models.Request`` (its ``subject_type`` / ``subject_id``
    name the record it is about, ``context`` holds the snapshot taken when it started);
    ``outcome`` is ``approved``, ``rejected``, ``withdrawn`` or ``cancelled``. Called inside the
    transaction that made the decision, before it commits: change the subject in the same
    session and it commits (or rolls back) with the decision. Raising aborts the decision.
    Implementations check ``request.subject_type`` and ignore the ones that are not theirs.
    Returns nothing.
    """
