//! The signer listens on no TCP socket: only its Unix socket, mode 0660.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use crate::common::Env;

/// The socket inodes a process holds open.
fn socket_inodes(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect()
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|p| p.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_string))
                })
                .flatten()
                .is_some_and(|ppid| ppid == pid.to_string())
        })
        .collect()
}

#[test]
fn the_signer_has_no_tcp_socket_and_a_0660_unix_socket() {
    let env = Env::new("");
    let signer = env.start();
    // One request, so the key holder is surely up.
    let t = crate::common::now().as_second();
    env.send(
        &crate::common::tuf_request(
            &env.release,
            "timestamp",
            &crate::common::timestamp(1, t + 3600, 1),
        )
        .0,
    )
    .unwrap();
    let front = signer.child.id();
    let holders = children(front);
    assert_eq!(holders.len(), 1, "one key holder expected: {holders:?}");
    let mut tcp_inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            if let Some(inode) = line.split_whitespace().nth(9) {
                tcp_inodes.push(inode.to_string());
            }
        }
    }
    for pid in std::iter::once(front).chain(holders) {
        let sockets = socket_inodes(pid);
        for s in &sockets {
            assert!(
                !tcp_inodes.contains(s),
                "process {pid} holds TCP socket inode {s}"
            );
        }
    }
    assert!(
        !socket_inodes(front).is_empty(),
        "the front holds its Unix socket"
    );
    let meta = std::fs::metadata(&env.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
}
