"""An API process that dies at the worst moment of a submit: after the run is recorded, at its
first publish (or after ``publishes`` of them). The request goes through the real app and view
(api/resources/runs.py), and the process is SIGKILLed by its publisher, so the store and the
broker are left exactly as by an API killed there.

    python -m tests.chaos.die_at_publish <publishes>

with the stack's FLOWBIN_* environment, and the request's body and token in CHAOS_RUN_BODY
and CHAOS_RUN_TOKEN.
"""

from __future__ import annotations

import os
import signal
import sys

from api.app import create_app
from shared.config import Settings
from shared.engine.broker_work import BrokerWork


class DyingPublisher:
    """Publishes the first ``publishes`` steps through the real publisher, then dies."""

    def __init__(self, real, publishes: int):
        self.real = real
        self.publishes = publishes

    def apply(self, work: BrokerWork) -> None:
        for step in work.publish[: self.publishes]:
            self.real.apply(BrokerWork(publish=[step]))
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    app = create_app(Settings.from_env())
    real = app.extensions["flowbin.publisher"]
    app.extensions["flowbin.publisher"] = DyingPublisher(real, int(sys.argv[1]))
    response = app.test_client().post(
        "/api/v1/flow/run_binary_async",
        data=os.environ["CHAOS_RUN_BODY"],
        headers={"Authorization": f"Bearer {os.environ['CHAOS_RUN_TOKEN']}"},
    )
    # Only reached if the view never published.
    print(response.status_code, response.get_data(as_text=True))
    sys.exit(3)


if __name__ == "__main__":
    main()
