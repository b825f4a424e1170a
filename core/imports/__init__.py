"""Import CSV/XLSX files into any ``Resource`` (``core.imports.service``) and the ``core_import`` table (``models``).

The service lives in its own module because the registry imports ``core.imports.models`` while
``core.resources`` (which the service needs) still waits for the registry.
"""
