"""Settings of the uploads area (traitlets, like the service's own): `c.UploadsConfig.<name>`."""
from __future__ import annotations

from pathlib import Path

from traitlets import Float, Integer, Unicode, default
from traitlets.config import Configurable

GIB = 1024 ** 3


class UploadsConfig(Configurable):
    """Where unfinished uploads live, where finished files land, and the limits."""

    data_dir = Unicode(config=True, help="Where unfinished uploads are kept (data file + .info each). "
                       "Default: <service data dir>/uploads. Put it on the filesystem of the users' homes "
                       "to make finishing an upload a rename instead of a copy.")

    @default("data_dir")
    def _default_data_dir(self):
        node = self.parent  # the area, whose parent is the service (which has the data dir)
        while node is not None and not getattr(node, "data_dir", None):
            node = getattr(node, "parent", None)
        return str(Path(node.data_dir if node is not None else Path.cwd()) / "uploads")

    storage_template = Unicode("/home/{system_user}", config=True,
                               help="The root of a user's storage, where finished uploads land. "
                               "{system_user} is the user's system account, {username} their hub name.")

    system_user_prefix = Unicode("astrago-", config=True,
                                 help="Prefix of users' system accounts (as LocalGPUSpawner.system_user_prefix).")

    create_accounts = Unicode("auto", config=True,
                              help="Create a user's system account and home when an upload finishes before "
                              "their first spawn: 'auto' (when running as root), 'yes' or 'no'.")

    default_storage_quota_gib = Float(100.0, config=True,
                                      help="Storage quota in GiB of a user whose quota sets no "
                                      "storage_gib (or of everyone, when the quota area is not enabled).")

    max_upload_size_gib = Float(1024.0, config=True,
                                help="Largest single upload in GiB (advertised as Tus-Max-Size).")

    expiry_hours = Float(24.0, config=True,
                         help="An unfinished upload with no data received for this long expires and is removed.")

    finished_record_hours = Float(24.0, config=True,
                                  help="How long the record of a finished upload stays (so a client that "
                                  "resumes late learns it is done).")

    cleanup_interval_seconds = Float(600.0, config=True,
                                     help="How often the cleaner looks for expired uploads.")

    write_buffer_kib = Integer(1024, config=True,
                               help="Bytes of a request body gathered before one disk write (two such "
                               "buffers per upload at most are in memory).")

    body_read_kib = Integer(256, config=True,
                            help="Bytes read from the socket at a time for a request body (tornado reads 64 KiB).")

    io_threads = Integer(8, config=True, help="Threads doing upload disk I/O (writes, fsync, hashing, copies).")

    lock_takeover_seconds = Float(10.0, config=True,
                                  help="How long a new request for an upload waits for the request holding it "
                                  "to let go after being interrupted; then it answers 423 Locked.")

    lock_stall_seconds = Float(3.0, config=True,
                               help="A request holding an upload that has received nothing for this long counts as "
                               "dead: a new PATCH takes over from it. A live one makes the newcomer get 423 Locked.")

    body_idle_seconds = Float(60.0, config=True,
                              help="An upload request whose body sends nothing for this long is closed (what "
                              "arrived is kept), so a vanished client holds no connection or lock.")

    drain_limit_kib = Integer(64 * 1024, config=True,
                              help="A refused PATCH/POST body up to this size is read and discarded so the "
                              "client sees the answer; a larger one is answered and the connection closed "
                              "(behind configurable-http-proxy the client then gets the proxy's 503). The "
                              "default covers the chunks of AstraGo's own clients (8 MiB page, 64 MiB CLI).")
