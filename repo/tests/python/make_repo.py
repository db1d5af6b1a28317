"""Make a TUF repository with python-tuf, for onionpkg's trust layer to read.

Usage: make_repo.py [--keys PLAN] [--names] OUTDIR

The repository is made with python-tuf's Metadata API only, so that it is an
independent implementation's idea of TUF 1.0, not a copy of ours:

- root: 2-of-3 keys, consistent snapshots; version 2 rotates one root key
  out and a new one in (signed by the two keys both versions share), so a
  client pinned to version 1 must walk the root chain;
- targets: 2-of-3 keys (2-of-2 in the `mixed` plan), each file signed by
  exactly two of them, so that dropping one signature falls below the
  threshold;
- snapshot, timestamp: 1-of-1 online keys; the timestamp pins the
  snapshot's length and hash;
- a delegated role `releases` (its own key, terminating, paths
  `releases/*`), a name the onionpkg layout does not use, so that
  `onionpkg-repo verify` is shown to follow any delegation;
- a top-level target in a sub-directory (`pkg/app-1.0.tar`, with a custom
  field) and a delegated one (`releases/tool-2.0.tar`).

With `--names`, the top-level targets also hold files whose names a URL
must percent-encode (a space, `%`, `#`, `?`, non-ASCII letters), and one
listed with a sha512 hash only (stored under its sha512, as consistent
snapshots name it), each in `NAMED_TARGETS`.

PLAN picks the kind of each role's keys (securesystemslib's own key types,
made by `CryptoSigner.generate_*`):

- `ed25519` (the default): every key ed25519;
- `ecdsa`: every key ECDSA P-256 (`ecdsa`/`ecdsa-sha2-nistp256`), as made by
  hardware tokens, cloud KMSs and tuf-on-ci;
- `mixed`: root ed25519; targets 2-of-2 with one ed25519 and one ECDSA key,
  so the threshold is met only if both kinds count; snapshot, timestamp and
  the delegated role ECDSA;
- `rsa`: root ed25519; targets, snapshot, timestamp and the delegated role
  RSA (`rsassa-pss-sha256`), a scheme onionpkg does not verify;
- `unknown`: every key ed25519 but the timestamp's, whose key type and
  scheme no TUF implementation knows (`x-unknown`/`x-unknown-scheme`); its
  signature is random bytes, as nothing can check it.

Layout written:

    OUTDIR/metadata/{1,2}.root.json, root.json, 1.targets.json,
        1.releases.json, 1.snapshot.json, timestamp.json
    OUTDIR/targets/<dir>/<sha256>.<basename>   (consistent snapshots)
    OUTDIR/expected/<target path>              (the plain contents)

The contents are deterministic; only keys and expiry times change per run.
Exits non-zero with a message on stderr if anything fails.
"""

import argparse
import hashlib
import os
import secrets
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner, Signature, Signer, SSlibKey
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    MetaFile,
    Metadata,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

SPEC_VERSION = "1.0.31"

# Target path -> contents. Large enough to span several read buffers of a
# streaming verifier, and different per target so a mix-up shows.
TOP_LEVEL_TARGET = "pkg/app-1.0.tar"
DELEGATED_TARGET = "releases/tool-2.0.tar"
CONTENTS = {
    TOP_LEVEL_TARGET: b"onionpkg interop: app 1.0\n" * 4000,
    DELEGATED_TARGET: bytes(range(256)) * 300,
}

# With --names: path -> (contents, hash algorithms listed).
NAMED_TARGETS = {
    "docs/read me.txt": (b"a space\n" * 100, ["sha256"]),
    "docs/100%.txt": (b"a percent sign\n" * 100, ["sha256"]),
    "docs/#1 issue.txt": (b"a hash sign\n" * 100, ["sha256"]),
    "docs/why?.txt": (b"a question mark\n" * 100, ["sha256"]),
    "docs/\u00fcbersicht-\u0645\u0631\u062d\u0628\u0627.txt": (b"non-ASCII letters\n" * 100, ["sha256"]),
    "docs/only-sha512.txt": (b"listed with sha512 only\n" * 100, ["sha512"]),
}

DELEGATED_ROLE = "releases"
DELEGATED_PATHS = ["releases/*"]

UNKNOWN_KEYTYPE = "x-unknown"
UNKNOWN_SCHEME = "x-unknown-scheme"


class UnknownSchemeSigner(Signer):
    """A key of a scheme nobody implements: its public key is random bytes
    and its signatures random bytes of the usual size."""

    def __init__(self):
        public = secrets.token_hex(32)
        keyid = hashlib.sha256(public.encode()).hexdigest()
        self._public_key = SSlibKey(keyid, UNKNOWN_KEYTYPE, UNKNOWN_SCHEME, {"public": public})

    @property
    def public_key(self):
        """The declared public key."""
        return self._public_key

    def sign(self, payload):
        return Signature(self._public_key.keyid, secrets.token_hex(64))

    @classmethod
    def from_priv_key_uri(cls, priv_key_uri, public_key, secrets_handler=None):
        raise ValueError("no private key URI for an unknown scheme")


# Key kind -> a function making a fresh signer of that kind.
GENERATORS = {
    "ed25519": CryptoSigner.generate_ed25519,
    "ecdsa": CryptoSigner.generate_ecdsa,
    "rsa": lambda: CryptoSigner.generate_rsa(scheme="rsassa-pss-sha256"),
    "unknown": UnknownSchemeSigner,
}


def plan(root, targets, online, delegated):
    """The key kinds of each role: 4 root keys, the targets keys, one each
    for snapshot, timestamp and the delegated role."""
    return {
        "root": [root] * 4,
        "targets": targets,
        "snapshot": online,
        "timestamp": online,
        "delegated": delegated,
    }


PLANS = {
    "ed25519": plan("ed25519", ["ed25519"] * 3, "ed25519", "ed25519"),
    "ecdsa": plan("ecdsa", ["ecdsa"] * 3, "ecdsa", "ecdsa"),
    "mixed": plan("ed25519", ["ed25519", "ecdsa"], "ecdsa", "ecdsa"),
    "rsa": plan("ed25519", ["rsa"] * 3, "rsa", "rsa"),
    "unknown": {**plan("ed25519", ["ed25519"] * 3, "ed25519", "ed25519"), "timestamp": "unknown"},
}


def expiry(days):
    """An expiry `days` from now, in whole seconds (what TUF metadata holds)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return now + timedelta(days=days)


def write(path, data):
    """Write bytes to path, creating parent directories."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def serialize(md, *signers):
    """Sign `md` with each signer and return the file bytes.

    The bytes are returned rather than written by `to_file` so that the hash
    the timestamp pins is the hash of exactly what lands on disk.
    """
    for signer in signers:
        md.sign(signer, append=True)
    return md.to_bytes(JSONSerializer(compact=False))


def consistent_target_path(path, data, algorithm="sha256"):
    """Where a consistent-snapshot repository stores a target: dir/HASH.name."""
    digest = hashlib.new(algorithm, data).hexdigest()
    directory, sep, name = path.rpartition("/")
    return f"{directory}{sep}{digest}.{name}"


def make_repo(outdir, kinds, names=False):
    """Write the whole repository (see the module docstring) under outdir,
    with the key kinds of `kinds` (one of PLANS), and with `names` the
    targets of NAMED_TARGETS."""
    metadata_dir = os.path.join(outdir, "metadata")
    targets_dir = os.path.join(outdir, "targets")
    expected_dir = os.path.join(outdir, "expected")

    root_keys = [GENERATORS[kind]() for kind in kinds["root"]]
    targets_keys = [GENERATORS[kind]() for kind in kinds["targets"]]
    snapshot_key = GENERATORS[kinds["snapshot"]]()
    timestamp_key = GENERATORS[kinds["timestamp"]]()
    feeds_key = GENERATORS[kinds["delegated"]]()

    # Root version 1: root keys 0, 1, 2; signed by 0 and 1 only (2 of 3).
    root = Root(spec_version=SPEC_VERSION, expires=expiry(365), consistent_snapshot=True)
    for signer in root_keys[:3]:
        root.add_key(signer.public_key, Root.type)
    for signer in targets_keys:
        root.add_key(signer.public_key, Targets.type)
    root.add_key(snapshot_key.public_key, Snapshot.type)
    root.add_key(timestamp_key.public_key, Timestamp.type)
    root.roles[Root.type].threshold = 2
    root.roles[Targets.type].threshold = 2
    root_md = Metadata(root)
    root_v1 = serialize(root_md, root_keys[0], root_keys[1])
    write(os.path.join(metadata_dir, "1.root.json"), root_v1)

    # Root version 2: key 2 leaves, key 3 joins. Keys 0 and 1 are in both
    # versions, so their two signatures meet the old and the new threshold.
    root.version = 2
    root.revoke_key(root_keys[2].public_key.keyid, Root.type)
    root.add_key(root_keys[3].public_key, Root.type)
    root_md = Metadata(root)
    root_v2 = serialize(root_md, root_keys[0], root_keys[1])
    write(os.path.join(metadata_dir, "2.root.json"), root_v2)
    write(os.path.join(metadata_dir, "root.json"), root_v2)

    # Target files, stored under their consistent names, and their plain
    # contents for the test to compare against.
    for path, data in CONTENTS.items():
        write(os.path.join(targets_dir, consistent_target_path(path, data)), data)
        write(os.path.join(expected_dir, path), data)

    # Delegated role: one target inside its paths, its own key.
    feeds = Targets(spec_version=SPEC_VERSION, expires=expiry(7))
    feeds.targets[DELEGATED_TARGET] = TargetFile.from_data(
        DELEGATED_TARGET, CONTENTS[DELEGATED_TARGET]
    )
    feeds_bytes = serialize(Metadata(feeds), feeds_key)
    write(os.path.join(metadata_dir, f"1.{DELEGATED_ROLE}.json"), feeds_bytes)

    # Top-level targets: a sub-directory target with a custom field, and the
    # delegation. Signed by its first two keys, exactly the threshold.
    targets = Targets(spec_version=SPEC_VERSION, expires=expiry(90))
    app = TargetFile.from_data(TOP_LEVEL_TARGET, CONTENTS[TOP_LEVEL_TARGET])
    app.unrecognized_fields["custom"] = {"version": "1.0"}
    targets.targets[TOP_LEVEL_TARGET] = app
    if names:
        for path, (data, algorithms) in NAMED_TARGETS.items():
            stored = consistent_target_path(path, data, algorithms[0])
            write(os.path.join(targets_dir, stored), data)
            write(os.path.join(expected_dir, path), data)
            targets.targets[path] = TargetFile.from_data(path, data, algorithms)
    targets.delegations = Delegations(
        keys={feeds_key.public_key.keyid: feeds_key.public_key},
        roles={
            DELEGATED_ROLE: DelegatedRole(
                name=DELEGATED_ROLE,
                keyids=[feeds_key.public_key.keyid],
                threshold=1,
                terminating=True,
                paths=DELEGATED_PATHS,
            )
        },
    )
    targets_bytes = serialize(Metadata(targets), targets_keys[0], targets_keys[1])
    write(os.path.join(metadata_dir, "1.targets.json"), targets_bytes)

    # Snapshot pins the targets roles by version only (python-tuf's default),
    # so a test may edit a targets file's signatures without also breaking
    # the snapshot.
    snapshot = Snapshot(
        spec_version=SPEC_VERSION,
        expires=expiry(7),
        meta={
            "targets.json": MetaFile(version=targets.version),
            f"{DELEGATED_ROLE}.json": MetaFile(version=feeds.version),
        },
    )
    snapshot_bytes = serialize(Metadata(snapshot), snapshot_key)
    write(os.path.join(metadata_dir, f"{snapshot.version}.snapshot.json"), snapshot_bytes)

    # Timestamp pins the snapshot's version, length and hash.
    timestamp = Timestamp(
        spec_version=SPEC_VERSION,
        expires=expiry(1),
        snapshot_meta=MetaFile(
            version=snapshot.version,
            length=len(snapshot_bytes),
            hashes={"sha256": hashlib.sha256(snapshot_bytes).hexdigest()},
        ),
    )
    write(
        os.path.join(metadata_dir, "timestamp.json"),
        serialize(Metadata(timestamp), timestamp_key),
    )


def main():
    """Entry point: make_repo.py [--keys PLAN] [--names] OUTDIR."""
    parser = argparse.ArgumentParser(description="Make a TUF repository with python-tuf.")
    parser.add_argument("--keys", choices=sorted(PLANS), default="ed25519")
    parser.add_argument("--names", action="store_true")
    parser.add_argument("outdir")
    args = parser.parse_args()
    outdir = args.outdir
    if os.path.exists(os.path.join(outdir, "metadata")):
        print(f"make_repo.py: {outdir} already holds a repository", file=sys.stderr)
        return 1
    try:
        make_repo(outdir, PLANS[args.keys], args.names)
    except Exception as e:  # noqa: BLE001 - any failure must end in a clear message
        print(f"make_repo.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
