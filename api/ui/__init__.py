"""The web UI (DESIGN section 6): server-rendered page shells (Jinja templates) whose small
JavaScript modules call the JSON API (/api/v1, /api/v2) with the session cookie and its CSRF
token; the sign-in session (session.py); every asset served by the app itself (assets.py),
Swagger UI's too. No build step, no CDN."""
