"""The editjudge router (``editjudge.server``): a FastAPI front end that fans image-edit scoring
out over vLLM servers.

Flow of a request: ``routes`` -> ``intake`` (body -> items, ``images``) -> ``admission`` ->
``scoring`` (fan-out, failover; ``group``, ``cache``) -> ``pool`` + ``policy`` (which engine) ->
``engine`` (the vLLM client), with ``protocols`` turning items into judge calls and replies into
scores. ``box`` (launcher, placement, compose) and ``testing`` (the fake engine) build on it.
"""
