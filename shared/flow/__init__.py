"""Flows: the formula language, the flow file, the compiler, the binary format and the runtime.

Pure domain code: no Flask, no Celery, no SQL. Workers call ``compiler.compile_project`` and
``runtime.run_step``; the API calls ``binary.load_binary`` to check what a run will execute, and
sync runs call ``runtime.run_steps`` in runner processes (``shared.runs.sync_runners``).
``composition`` turns Metaflow and Flows binaries into one list of steps; ``output_schema`` is a
run's modify_output_schema. ``step_types`` holds each step type (its params check and what it does
to a record), and ``step_types.registry`` is the one table the compiler and the runtime use.
Imports nothing of Flowbin's outside ``shared.flow`` but ``shared.errors`` and
``shared.url_guard`` (the http step calls out through it).
"""
