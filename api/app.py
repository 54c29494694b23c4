"""The Flask app factory."""

from __future__ import annotations

from flask import Flask

from api.errors import FlowbinApi, register_error_handlers
from api.instrumentation import instrument
from api.lenient import add_warnings
from api.openapi import OperationLinks, SchemaExtras, null_or_nested
from api.permissions import check_declared
from api.ui import assets, pages
from shared import url_guard
from shared.config import Settings
from workers.app import create_celery_app
from workers.publisher import CeleryPublisher

MAX_UPLOAD_BYTES = 256 * 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    url_guard.check_networks(settings.allowed_networks, settings.webhook_allowed_networks)
    app = Flask("flowbin")
    app.config.update(
        FLOWBIN_SETTINGS=settings,
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
        API_TITLE="Flowbin",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        # Swagger UI's assets come from the app itself (api/ui/assets.py): no CDN.
        OPENAPI_SWAGGER_UI_URL=assets.SWAGGER_URL,
        JSON_SORT_KEYS=False,
        # Every operation needs a token or an API key; health says it does not
        # (api/resources/health.py).
        API_SPEC_OPTIONS={"security": [{"bearerAuth": []}, {"basicAuth": []}]},
    )
    app.json.sort_keys = False
    # The API only publishes to the broker; tasks run in worker processes. This is the one
    # place the API meets workers/: views reach the broker through the publisher.
    celery = app.extensions["flowbin.celery"] = create_celery_app(settings)
    app.extensions["flowbin.publisher"] = CeleryPublisher(celery, settings.delivery_interval)
    links = OperationLinks()
    api = FlowbinApi(app, spec_kwargs={"extra_plugins": [links, SchemaExtras()]})
    app.extensions["flowbin.api"] = api
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.spec.components.security_scheme(
        "basicAuth",
        {
            "type": "http",
            "scheme": "basic",
            "description": "an API key, alone or as the password of `user:key`",
        },
    )
    api.ma_plugin.converter.add_attribute_function(null_or_nested)

    from api.resources import compile, deliveries, drive, health, jobs, review, runs

    # Before the drive's routes are registered: their rules and their spec use it.
    app.url_map.converters["drive_path"] = drive.DrivePathConverter
    api.register_converter(drive.DrivePathConverter, drive.path_parameter_schema)

    for module in (health, drive, compile, runs, jobs, deliveries, review):
        api.register_blueprint(module.blp)
    from api.resources import api_keys, documents, sync, teams, users, v2_contents, v2_jobs

    for module in (sync, users, teams, api_keys, v2_jobs, v2_contents, documents):
        api.register_blueprint(module.blp)
    from api.resources import drives, files

    api.register_blueprint(files.blp)
    api.register_blueprint(drives.blp)
    from api.resources import job_files

    api.register_blueprint(job_files.blp)
    links.add_links()
    # The web UI: HTML pages and assets, outside the API spec.
    pages.register(app)
    app.register_blueprint(assets.blp)
    from api.resources import metrics

    # Prometheus's text at /metrics, outside the API spec (docs/metrics.md).
    app.register_blueprint(metrics.blp)
    check_declared(app)
    app.after_request(add_warnings)
    instrument(app)
    register_error_handlers(app)
    return app
