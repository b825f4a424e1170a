"""The REST API, ``/api/v1``. The core's own objects live under ``/api/v1/core``."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from core.api import org  # noqa: E402,F401  (routes register on import)
from core.api import resources  # noqa: E402,F401
from core.api import openapi  # noqa: E402,F401
from core.api import auth_tokens  # noqa: E402,F401
from core.api import inbox  # noqa: E402,F401
from core.api import search  # noqa: E402,F401
from core.api import imports  # noqa: E402,F401
from core.api import discussion  # noqa: E402,F401
