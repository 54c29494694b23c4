"""Jobs in the store: ids, guarded state transitions, tags, ownership, summaries, listing, logs.
May import store, delivery (a job's final transition creates its deliveries), users, metrics
(a new job's trace id) and the top-level modules."""
