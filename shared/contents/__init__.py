"""What goes into a job and comes out of it, as the resource API shows them (seed 002's
documents and job contents): documents a user uploads to run flows on, and a job's contents
(its input files, results, each step's outputs, the records awaiting review), filtered by what
the caller may read. May import accounts, engine, flow, jobs, review, runs, store
and the top-level modules."""
