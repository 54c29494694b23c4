"""Operator tooling, not domain code: the `flowbin` CLI, `flowbin up` and its embedded Redis.
May import anything in shared; nothing in shared imports it."""
