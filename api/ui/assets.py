"""Every asset a page loads, served by the app: the UI's own scripts and styles (``static/``)
and Swagger UI's, from the ``flask-swagger-ui`` package that ships swagger-ui-dist, so that
/docs works with no internet access."""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, send_from_directory

from api.permissions import PUBLIC, needs

UI_ASSETS = Path(__file__).resolve().parent / "static"
SWAGGER_ASSETS = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
SWAGGER_URL = "/docs/assets/"
# The files are fixed for a given release of the app: browsers may keep them for an hour.
MAX_AGE = 3600

blp = Blueprint("ui_assets", __name__)


@blp.get("/ui/assets/<path:filename>")
@needs(PUBLIC)
def ui_asset(filename: str):
    return send_from_directory(UI_ASSETS, filename, max_age=MAX_AGE)


@blp.get(f"{SWAGGER_URL}<path:filename>")
@needs(PUBLIC)
def swagger_asset(filename: str):
    return send_from_directory(SWAGGER_ASSETS, filename, max_age=MAX_AGE)
