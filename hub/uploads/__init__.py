"""Resumable uploads: a tus 1.0.0 server in the AstraGo service (see docs/uploads.md).

Modules, one idea each: `area` (the UploadsArea: its state, routes and cleaner), `tus`
(the protocol's header grammar, pure), `names` (what a stored file may be called, pure),
`store` (unfinished uploads on disk: data file + `.info`), `writer` (one request body
streamed onto a data file), `locks` (one writer per upload, with takeover), `storage`
(the user's own storage: safe paths, atomic placement, usage), `quota` (the room a user
has), `finishing` (placing a complete upload), `expiry` (the cleaner), `metrics`,
`config`, `schemas` (what the operations declare); the tornado handlers: `protocol` (the
tus request life they share), `collection` (`api/uploads/`), `resource`
(`api/uploads/<id>`) and `page` (`uploads/`).
"""
