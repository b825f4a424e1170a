"""The baseline of ``bench api_rps``: a bare Flask + SQLAlchemy app replaying the Yiti list endpoint's SQL.

``gunicorn 'bench.bare_app:create()'`` with ``BENCH_DATABASE_URL`` (the same database) and
``BENCH_STATEMENTS`` (a JSON file of ``[statement, parameters]`` pairs, page then count, captured
from the Yiti endpoint). ``GET /notes`` runs both and answers ``{"items": [...], "total": n}``.
"""
from __future__ import annotations

import json
import os

from flask import Flask, jsonify
from sqlalchemy import create_engine


def create() -> Flask:
    engine = create_engine(os.environ["BENCH_DATABASE_URL"])
    with open(os.environ["BENCH_STATEMENTS"], encoding="utf-8") as file:
        (page_sql, page_params), (count_sql, count_params) = json.load(file)
    page_params = tuple(page_params) if isinstance(page_params, list) else page_params
    count_params = tuple(count_params) if isinstance(count_params, list) else count_params
    app = Flask("bare")

    @app.get("/notes")
    def notes():
        with engine.connect() as conn:
            result = conn.exec_driver_sql(page_sql, page_params)
            items = [dict(row._mapping) for row in result]
            total = conn.exec_driver_sql(count_sql, count_params).scalar()
        return jsonify({"items": items, "total": total})

    return app
