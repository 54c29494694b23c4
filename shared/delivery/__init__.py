"""Telling people a job ended: deliveries in the store, the retry policy, webhooks, emails and
the URL guard. May import store, users and the top-level modules, never jobs or engine."""
