"""Running a flow job's steps as worker tasks do: claims with fencing tokens, the step itself,
the file's advance, the job's ending, stalled-step recovery, and the broker work that results.
May import store, jobs, flow, metrics (steps counted) and the top-level modules, never runs or
review."""
