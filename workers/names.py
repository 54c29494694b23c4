"""Task names and fixed broker priorities, shared by the tasks, the publisher and beat."""

RUN_STEP = "flowbin.run_step"
COMPILE = "flowbin.compile"
RELEASE_JOB = "flowbin.release_job"
RECOVER_STALLED = "flowbin.recover_stalled_steps"
DELIVER_DUE = "flowbin.deliver_due"
EXPIRE_JOBS = "flowbin.expire_jobs"
NOOP = "flowbin.noop"

# Broker priority of the delivery task: the middle bucket (user priority 5), so notifications
# neither wait behind every queued step nor jump ahead of urgent runs.
DELIVERY_PRIORITY = 4
# Recovery restarts stalled work: it goes ahead of everything (bucket 0 is popped first).
RECOVERY_PRIORITY = 0
# Retention deletes old jobs: nothing waits for it, so it goes behind everything.
RETENTION_PRIORITY = 9
