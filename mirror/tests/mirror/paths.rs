//! Nothing outside the root is served, however the path is spelled.

use crate::util::{config, get, raw, start};

const SECRET: &[u8] = b"top secret outside the root";

/// A served tree plus a secret file next to it, and symlinks pointing out.
fn tree(dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("metadata")).unwrap();
    std::fs::create_dir_all(root.join("targets/pkg")).unwrap();
    std::fs::write(root.join("metadata/timestamp.json"), b"{\"t\":1}").unwrap();
    std::fs::write(root.join("targets/pkg/a.tar"), b"package a").unwrap();
    std::fs::write(root.join("state.txt"), SECRET).unwrap();
    std::fs::write(dir.join("secret.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("targets/escape")).unwrap();
    std::os::unix::fs::symlink(dir, root.join("targets/outdir")).unwrap();
    std::os::unix::fs::symlink(
        "../../metadata/timestamp.json",
        root.join("targets/pkg/inside"),
    )
    .unwrap();
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_attempts_get_400_or_404() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path());
    let cfg = config(tmp.path(), &root, "[listen]\nhttp = \"127.0.0.1:0\"\n");
    let mirror = start(&cfg).await;
    let addr = mirror.http_addr().unwrap();

    // Served normally, so the refusals below are not a server serving nothing.
    let ok = get(addr, "/targets/pkg/a.tar").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, b"package a");
    let inside = get(addr, "/targets/pkg/inside").await;
    assert_eq!(inside.status, 200, "a symlink within the root is served");

    let attempts: &[(&str, &[u16])] = &[
        ("/metadata/../../secret.txt", &[400]),
        ("/metadata/../state.txt", &[400]),
        ("/../secret.txt", &[400]),
        ("/metadata/%2e%2e/%2e%2e/secret.txt", &[400]),
        ("/metadata/%2E%2E/state.txt", &[400]),
        ("/metadata/.%2e/state.txt", &[400]),
        ("/targets/a%2f..%2f..%2fsecret.txt", &[400]),
        ("/targets/..%5c..%5csecret.txt", &[400]),
        ("/metadata/timestamp.json%00", &[400]),
        ("/metadata/timestamp.json%00.png", &[400]),
        ("/targets/escape", &[404]),
        ("/targets/outdir/secret.txt", &[404]),
        ("/targets/outdir/root/state.txt", &[404]),
        ("/state.txt", &[404]),
        ("/metadata/", &[400, 404]),
        ("/metadata", &[404]),
        ("/targets/pkg", &[404]),
        ("//etc/passwd", &[400, 404]),
        ("/metadata//timestamp.json", &[400]),
    ];
    for (path, allowed) in attempts {
        let r = get(addr, path).await;
        assert!(
            allowed.contains(&r.status),
            "{path}: got {} ({})",
            r.status,
            r.head
        );
        assert!(
            !r.body.windows(SECRET.len()).any(|w| w == SECRET),
            "{path} leaked the secret"
        );
    }

    // Raw bytes hyper's parser sees before our checks: NUL, backslash,
    // an absolute-form target, spaces.
    for request in [
        &b"GET /metadata/timestamp.json\0 HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n"[..],
        b"GET /metadata\\..\\..\\secret.txt HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
        b"GET http://m/../secret.txt HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    ] {
        let r = raw(addr, request).await;
        assert!(
            [400, 404].contains(&r.status),
            "{:?}: got {}",
            String::from_utf8_lossy(request),
            r.status
        );
        assert!(!r.body.windows(SECRET.len()).any(|w| w == SECRET));
    }

    // Only GET and HEAD.
    let post = raw(
        addr,
        b"POST /metadata/timestamp.json HTTP/1.1\r\nHost: m\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow").as_deref(), Some("GET, HEAD"));
    assert!(ok.header("server").is_none(), "no server header");
    mirror.shutdown(crate::util::WAIT).await;
}
