"""Telling people a job ended: deliveries in the store, the retry policy, webhooks and emails.
May import store, users, metrics (attempts counted) and the top-level modules, never jobs or
engine."""
