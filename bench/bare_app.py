"""The baselines of ``bench api_rps``: bare Flask apps answering the Yiti list endpoint's query.

``gunicorn 'bench.bare_app:create()'`` with ``BENCH_DATABASE_URL`` (the same database) and
``BENCH_STATEMENTS`` (a JSON file of ``[statement, parameters]`` pairs, page then count, captured
from the Yiti endpoint). Two endpoints, both answering ``{"items": [...], "total": n}``:

- ``GET /notes``: what a developer writes by hand with Flask and SQLAlchemy, without Yiti: the
  same ``SELECT`` (the scope's ``owner_id = :me OR department_id IN (...)``, the sort, the page)
  and the same count, built with SQLAlchemy Core on the reflected table, datetimes as ISO text.
  This is the issue's "bare Flask + SQLAlchemy endpoint running the same query".
- ``GET /notes/replay``: the floor: the captured SQL text replayed through the driver
  (``exec_driver_sql``), rows as the driver returns them (no types, no compiling, no checks).
"""
from __future__ import annotations

import json
import os
import warnings
from datetime import date

from flask import Flask, jsonify, request
from sqlalchemy import MetaData, Table, create_engine, func, or_, select


def create() -> Flask:
    engine = create_engine(os.environ["BENCH_DATABASE_URL"])
    with open(os.environ["BENCH_STATEMENTS"], encoding="utf-8") as file:
        (page_sql, page_params), (count_sql, count_params) = json.load(file)
    page_params = tuple(page_params) if isinstance(page_params, list) else page_params
    count_params = tuple(count_params) if isinstance(count_params, list) else count_params
    with warnings.catch_warnings():  # expression indexes of other tables are not reflected, and not needed
        warnings.simplefilter("ignore")
        notes = Table("notes_note", MetaData(), autoload_with=engine)
    engine.dispose()  # gunicorn --preload forks the workers after this: each must open its own connections
    columns = [notes.c[name] for name in ("id", "title", "body", "owner_id", "department_id", "created_at",
                                          "updated_at", "version")]
    app = Flask("bare")

    @app.get("/notes")
    def notes_list():
        me = int(request.args["owner_id"])
        departments = [int(d) for d in request.args["departments"].split(",")]
        per_page = int(request.args.get("per_page", 20))
        scope = or_(notes.c.owner_id == me, notes.c.department_id.in_(departments))
        page = (select(*columns).where(scope).order_by(notes.c.updated_at.desc(), notes.c.id.desc())
                .limit(per_page).offset(0))
        with engine.connect() as conn:
            items = [{key: value.isoformat() if isinstance(value, date) else value
                      for key, value in row._mapping.items()} for row in conn.execute(page)]
            total = conn.execute(select(func.count()).select_from(notes).where(scope)).scalar()
        return jsonify({"items": items, "total": total})

    @app.get("/notes/replay")
    def notes_replay():
        with engine.connect() as conn:
            result = conn.exec_driver_sql(page_sql, page_params)
            items = [dict(row._mapping) for row in result]
            total = conn.exec_driver_sql(count_sql, count_params).scalar()
        return jsonify({"items": items, "total": total})

    return app
