"""Refresh and download from a TUF repository tree with python-tuf's ngclient.

Usage: client.py [--metadata-dir DIR] REPO_DIR ROOT_FILE TARGET...

REPO_DIR holds `metadata/` and `targets/` (the onionpkg layout). It is served
over HTTP on 127.0.0.1 with an ephemeral port, from a background thread, for
the duration of the run only; nothing else is contacted (proxy variables are
dropped so the requests cannot leave this host).

The client bootstraps from ROOT_FILE, refreshes, then resolves and downloads
each TARGET, and prints one JSON line per target on stdout:

    {"path": ..., "length": ..., "sha256": ...}

(of the downloaded file, as written to disk). With --metadata-dir, trusted
metadata is kept in DIR: a later run with the same DIR is an update from that
state (rollback checks included), not a fresh bootstrap.

Exits 1 with a message on stderr on any failure, 2 on bad usage.
"""

import argparse
import functools
import hashlib
import http.server
import json
import os
import sys
import tempfile
import threading

from tuf.ngclient import Updater

# How long to wait for the server thread to stop; it stops at once unless
# something is badly wrong, and then the exit code says so.
SERVER_STOP_TIMEOUT = 10


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging every request to stderr.

    stderr is kept for failures, so that the test shows exactly why a run
    failed.
    """

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        """Drop the per-request access log."""


def drop_proxy_settings():
    """Remove proxy variables: every request must go to 127.0.0.1 directly."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            del os.environ[name]


def sha256_of(path):
    """The hex sha256 of a file and its length."""
    digest = hashlib.sha256()
    length = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(64 * 1024), b""):
            digest.update(chunk)
            length += len(chunk)
    return digest.hexdigest(), length


def run(base_url, root_bytes, metadata_dir, target_dir, targets):
    """Refresh, then download every target; print one JSON line for each."""
    updater = Updater(
        metadata_dir=metadata_dir,
        metadata_base_url=f"{base_url}/metadata/",
        target_base_url=f"{base_url}/targets/",
        target_dir=target_dir,
        bootstrap=root_bytes,
    )
    updater.refresh()
    for path in targets:
        info = updater.get_targetinfo(path)
        if info is None:
            raise LookupError(f"no trusted role lists target {path!r}")
        local = updater.download_target(info)
        digest, length = sha256_of(local)
        print(json.dumps({"path": path, "length": length, "sha256": digest}), flush=True)


def main():
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metadata-dir", help="keep trusted metadata here between runs")
    parser.add_argument("repo_dir")
    parser.add_argument("root_file")
    parser.add_argument("targets", nargs="+", metavar="TARGET")
    args = parser.parse_args()

    drop_proxy_settings()
    with open(args.root_file, "rb") as f:
        root_bytes = f.read()

    handler = functools.partial(QuietHandler, directory=args.repo_dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            metadata_dir = args.metadata_dir or os.path.join(tmp, "metadata")
            target_dir = os.path.join(tmp, "targets")
            os.makedirs(metadata_dir, exist_ok=True)
            os.makedirs(target_dir)
            run(base_url, root_bytes, metadata_dir, target_dir, args.targets)
    except Exception as e:  # noqa: BLE001 - any failure must end in a clear message
        print(f"client.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(SERVER_STOP_TIMEOUT)
    if thread.is_alive():
        print("client.py: the HTTP server thread did not stop", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
