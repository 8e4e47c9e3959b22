"""The dashboard: server-rendered page shells, and the JavaScript modules that make them live.

The pages hold no user data: ``static/js`` signs in over the REST API, keeps the tokens in
``sessionStorage``, and follows jobs over Socket.IO (SSE when Socket.IO cannot connect). The
Socket.IO client is vendored in ``static/vendor`` (see ``scripts/vendor-socketio.sh``), so the
dashboard needs no CDN and no build step.
"""
