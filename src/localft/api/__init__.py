"""The OpenAI-compatible HTTP server.

app.py        create_app(settings): services on app.state, routers under /v1, embedded worker, dashboard
server.py     serve() for `localft serve`; EmbeddedServer (a free loopback port, background thread)
errors.py     domain exceptions -> OpenAI's error envelope, for every HTTP error
auth.py       Bearer API keys (open when none are configured)
limits.py     upload size limit from Content-Length
health.py     /health and /version
files/ fine_tuning/ models/ chat/    router.py (HTTP only) -> service.py (logic) -> protocol.py (wire models)
"""
