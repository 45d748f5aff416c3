"""The admin service: carrying enforcement cases through every step of 新乡府发〔2024〕52号.

Server-rendered pages in Simplified Chinese (FastAPI + Jinja2 + a vendored htmx, every asset
served from /static) and a JSON API under /api/v1 (schema: /api/openapi.json).

Modules
- ``app``: ``create_app(AdminSettings)``, error pages in Chinese, security headers (CSP).
- ``permissions``: THE permission matrix (data); ``security.need`` enforces it (one place):
  session lookup, role, CSRF on every state-changing request, case visibility, audit entry
  for every refusal.
- ``pages``: the HTML routes; ``api``: the JSON routes; ``views``: what both show.
- ``demo``: ``seed-demo`` data, a real H.264 clip maker and ``store_segment`` for tests.
- ``__main__``: ``lerec-admin serve | create-user | seed-demo``.

Authentication: argon2id passwords, server-side sessions (``web_sessions`` holds the SHA-256
of the cookie value), a new session id at every login (the pre-login session that carried the
login form's CSRF token is deleted), cookie ``HttpOnly; Secure; SameSite=Lax``. API clients
use the same cookie: ``GET /api/v1/session`` (CSRF token for the login), ``POST
/api/v1/session`` (login; returns the session's CSRF token), then send ``X-CSRF-Token`` on
every POST/PUT/PATCH/DELETE. There are no bearer tokens.

Audit: logins, failed logins, logouts, every create/change of cases, records, attachments,
transcripts, links, approvals, archiving and user changes, every clip/attachment download and
every view (a view is logged once per session and object within five minutes, because a
browser plays a video through many range requests), and every refused request (event
``access_denied`` with the reason in its details; ``login_failed`` for unauthenticated API
calls and bad passwords).
"""
