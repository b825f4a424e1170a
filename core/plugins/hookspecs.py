"""Every hook the core offers to plugins.

Hooks are called with keyword arguments and return lists; the core sorts what it collects by
explicit keys, so nothing depends on the order plugins were registered in. A new hook needs a
docstring and a test named ``test_hook_<name>`` (guard tests enforce both).
"""
from core.plugins.markers import hookspec


@hookspec
def register_models():
    """Model classes this plugin owns.

    Returns a list of SQLAlchemy model classes whose table names start with ``<plugin>_``.
    Their schema changes ship as Alembic revisions in ``<package>/migrations/``, a branch labelled
    with the plugin name. Disabling the plugin never drops these tables. Called once at start-up.
    """


@hookspec
def register_blueprints(app):
    """Flask blueprints this plugin serves.

    ``app`` is the Flask app being built. Returns a list of ``Blueprint`` objects (templates and
    static files travel with them); the core registers them in name order. Called once in
    ``create_app`` after the core's own blueprints.
    """


@hookspec
def register_permissions():
    """Permissions this plugin defines.

    Returns a list of ``Permission``. Names are ``<plugin>.<resource>.<action>``; a name declared
    twice stops start-up. Called once at start-up, after every plugin is registered.
    """


@hookspec
def register_resources():
    """Business objects this plugin declares.

    Returns a list of ``core.resources.Resource``. From each the core derives its permissions
    (``<plugin>.<name>.<action>`` for every action it lists), its REST API under
    ``/api/v1/<plugin>/<plural>`` and its place in the generic permission tests. A resource key
    declared twice stops start-up. Called once at start-up.
    """


@hookspec
def register_roles():
    """Default role templates: what each built-in role may do in this plugin.

    Returns a list of ``RoleTemplate`` (role key, grants ``{permission: scope}``, field rules).
    Several plugins may add grants to the same role key; a new key creates a role. ``yiti init``
    and ``yiti demo`` apply each grant once, so an admin's later changes are never undone.
    Called when templates are applied.
    """


@hookspec
def register_menu(user):
    """Navigation entries for ``user`` (the logged-in user).

    Returns a list of ``MenuItem``; the portal shows them sorted by ``(section, order, key)``, a
    module's pages under one ``group`` label as one dropdown of the top bar. Return nothing for
    a user who may not use the page. Called on every page render.
    """


@hookspec
def register_dashboard_widgets(user):
    """Cards for the home dashboard of ``user``.

    Returns a list of ``DashboardWidget``; they are shown sorted by ``(order, key)``. Keep
    ``render`` cheap: it runs on every visit of the home page. Called on every home page render.
    """


@hookspec
def register_cli(cli):
    """Command-line commands.

    ``cli`` is the app's Click group (``yiti``). Add commands or groups to it; return nothing.
    Called once in ``create_app``.
    """


@hookspec
def demo_data(company):
    """Sample records for the demo company.

    ``company`` is a ``DemoCompany`` with the departments and users ``yiti demo`` created.
    Create records through your services (inside the caller's transaction); return nothing.
    Must be idempotent: ``yiti demo`` may run again on the same database. Add sample business
    records (customers, orders...) only when ``company.records`` is true (the ``DEMO_RECORDS``
    setting); what the company needs to work (default flows, settings) always.
    """


@hookspec
def register_event_types():
    """Events this plugin emits with ``core.events.emit(name, **payload)``.

    Returns a list of ``EventType``; names are ``<plugin>.<event>`` and a name declared twice
    stops start-up. Emitting a name nobody declared raises ``UnknownEvent``. Called once at
    start-up.
    """


@hookspec
def on_event(name, payload):
    """React to an event after the transaction that emitted it has committed.

    ``name`` is the event name, ``payload`` the JSON-ready dict given to ``emit``. Never called for
    a rolled-back transaction; called once per committed ``emit``, in the process that committed,
    with a fresh transaction that is committed when the hook returns (rolled back if it raises;
    the error is logged and never reaches the request). For work that must not be lost, rely on
    the outbox (``register_deliveries``) instead: a process may die between commit and this call.
    """


@hookspec
def register_jobs():
    """Periodic background jobs, run by ``yiti worker``.

    Returns a list of ``PeriodicJob`` (``name`` ``<plugin>.<job>``, ``func``, ``every``: a
    ``timedelta`` or a cron string read in ``DEFAULT_TIMEZONE``). Each run has its own app
    context and session, committed when ``func`` returns. A name declared twice stops the worker.
    Called when the worker (or a test) builds the job queue.
    """


@hookspec
def register_deliveries():
    """Where outbox messages are delivered (webhooks, notification channels).

    Returns a list of ``Delivery(name, deliver, events=None)``. Every committed event that some
    delivery wants is an outbox row; the worker's sweeper calls ``deliver(message)`` for it, retries
    with exponential backoff when it raises, and marks it dead after ``OUTBOX_MAX_ATTEMPTS``.
    Delivery is at least once: ``deliver`` must send ``message.idempotency_key`` so that a
    receiver drops a repeat. Called once at start-up.
    """
