"""Resumable uploads: a tus 1.0.0 server in the AstraGo service (see docs/uploads.md).

Modules, one idea each: `tus` (the protocol's header grammar, pure), `names` (what a
stored file may be called, pure), `store` (unfinished uploads on disk: data file +
`.info`), `writer` (one request body streamed onto a data file), `locks` (one writer
per upload, with takeover), `storage` (the user's own storage: safe paths, atomic
placement, usage), `quota`, `expiry` (the cleaner), `metrics`, `config`, and the
tornado handlers in `api` and `page`.
"""
