"""The build engine: plan (pure: config, history, cache keys), then execute (sandbox, layers).

Pure modules here: ``history`` (history texts and the exporter's time rules), ``configstep``
(per-instruction config and history, stage plans), ``cachekey`` (step cache keys) and ``parsecache``
(parsed Dockerfiles cached under the state root). Import them directly; this package imports nothing
eagerly so that each stays cheap to load.
"""
