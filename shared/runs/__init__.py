"""What users ask of jobs: submitting runs, compiling, sync runs, and pause, resume, cancel,
retry; and what a job's files are at each step (``file_steps``, the web UI's grid).
Returns broker work for the caller to publish. May import engine, jobs, delivery, flow,
store, metrics (sync runner pools) and the top-level modules."""
