"""What users ask of jobs: submitting runs, compiling, sync runs, and pause, resume, cancel,
retry. Returns broker work for the caller to publish. May import engine, jobs, delivery, flow,
store and the top-level modules."""
