"""Who is calling and what they may do: users, teams, credentials (tokens and API keys), and
the one authorization module (``access``) every endpoint asks, and who a web UI session's
credential is now (``sessions``). May import store and the
top-level modules errors and states."""
