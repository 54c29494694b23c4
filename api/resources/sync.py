"""POST /api/v1/flow/run_binary_sync: run a flow binary over files sent in the request and
answer with the results (seed 001). The run happens in this API process's sync runners."""

from __future__ import annotations

import threading

from flask import current_app
from flask.views import MethodView

from api.blueprint import Blueprint, principal
from api.context import settings, store
from api.permissions import needs
from api.sync_schemas import RunSyncArgs, RunSyncResponse
from shared.runs.sync import SyncFile, SyncRequest, run_sync
from shared.runs.sync_runners import RunnerPool
from shared.states import Permission

blp = Blueprint(
    "flow_sync",
    __name__,
    url_prefix="/api/v1/flow",
    description="Run flow binaries synchronously, in memory",
)

_POOL_KEY = "flowbin.sync_runners"
_pool_lock = threading.Lock()


def runner_pool() -> RunnerPool:
    """This app's sync runners; the processes start on the first sync run."""
    extensions = current_app.extensions
    with _pool_lock:
        if _POOL_KEY not in extensions:
            extensions[_POOL_KEY] = RunnerPool(settings().sync_runners)
        return extensions[_POOL_KEY]


@blp.route("/run_binary_sync")
class RunBinarySync(MethodView):
    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(RunSyncArgs)
    @blp.response(200, RunSyncResponse)
    def post(self, args):
        """Run a binary over 1-5 base64 files in memory and answer with the results

        The run may take FLOWBIN_SYNC_TIMEOUT seconds (60 by default); past that it is stopped
        and the answer is a 504.
        """
        options = args["options"]
        request = SyncRequest(
            binary_path=args["binary_path"],
            files=tuple(
                SyncFile(item["file_name"], item["file_content"]) for item in args["files"]
            ),
            result_format=options["result_format"],
            runtime_config=dict(options["runtime_config"]),
        )
        return run_sync(settings(), store, principal(), request, runner_pool())
