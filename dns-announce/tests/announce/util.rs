//! Code shared by the integration tests: repositories made with the
//! onionpkg-repo library, the binary under test, an in-process server, and a
//! raw DNS query for checking answers byte for byte.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RData, RecordType};
use jiff::{SignedDuration, Timestamp};
use onionpkg_announce::make::{Signed, Signers, Validity, sign};
use onionpkg_announce::serve::{AnnounceZone, Listening, listen};
use onionpkg_repo::{Expiries, InitOptions, KeyDir, RepoDir, Threshold};

/// The zone and owner name the tests announce at.
pub(crate) const ZONE: &str = "example.org";
pub(crate) const NAME: &str = "_update.example.org";

/// The time limit of every wait in these tests.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// A repository made by the onionpkg-repo library, with its keys.
pub(crate) struct TestRepo {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) repo: RepoDir,
    pub(crate) keys: KeyDir,
    packages: std::cell::Cell<u32>,
}

impl TestRepo {
    /// A repository (root 2/3, other roles 1/1) with one package published.
    pub(crate) fn new() -> Self {
        Self::with_options(&InitOptions::default())
    }

    /// A repository whose timestamp role has two keys, both required: its
    /// announcements carry two signatures and need two TXT strings.
    pub(crate) fn with_two_timestamp_keys() -> Self {
        let mut opts = InitOptions::default();
        opts.thresholds.insert(
            "timestamp".into(),
            Threshold {
                threshold: 2,
                count: 2,
            },
        );
        Self::with_options(&opts)
    }

    fn with_options(opts: &InitOptions) -> Self {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let repo = RepoDir::new(tmp.path().join("repo"));
        let keys = KeyDir::new(tmp.path().join("keys"), None);
        repo.init(&keys, opts, &Expiries::default(), Timestamp::now())
            .expect("init");
        let t = Self {
            tmp,
            repo,
            keys,
            packages: std::cell::Cell::new(0),
        };
        t.publish_new();
        t
    }

    /// Stages one more package and publishes; returns the new timestamp
    /// version (the announcement serial).
    pub(crate) fn publish_new(&self) -> u64 {
        self.publish_new_at(Timestamp::now())
    }

    /// As [`TestRepo::publish_new`], signed at `now` (the timestamp expires
    /// a day later).
    pub(crate) fn publish_new_at(&self, now: Timestamp) -> u64 {
        let n = self.packages.get() + 1;
        self.packages.set(n);
        let file = self.tmp.path().join("input");
        std::fs::write(&file, format!("package {n}\n")).expect("writing a package");
        self.repo
            .add_target(
                &file,
                &format!("pkg/p-{n}.tar"),
                &Default::default(),
                "targets",
            )
            .expect("add");
        self.repo
            .publish(&self.keys, &Expiries::default(), &[], now)
            .expect("publish")
    }

    /// The `signed.expires` of the published timestamp.json.
    pub(crate) fn timestamp_expires(&self) -> Timestamp {
        let path = self.repo.metadata_dir().join("timestamp.json");
        let ts: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).expect("reading timestamp.json"))
                .expect("timestamp.json is JSON");
        ts["signed"]["expires"]
            .as_str()
            .expect("an expiry")
            .parse()
            .expect("an RFC 3339 time")
    }

    /// The pinned root: version 1.
    pub(crate) fn root(&self) -> PathBuf {
        self.repo.metadata_dir().join("1.root.json")
    }

    /// The repository directory.
    pub(crate) fn dir(&self) -> &Path {
        self.repo.dir()
    }

    /// The key directory.
    pub(crate) fn keys_dir(&self) -> &Path {
        self.keys.dir()
    }

    /// The private keys of the timestamp role.
    pub(crate) fn timestamp_keys(&self) -> Vec<onionpkg_trust::sign::SecretKey> {
        self.timestamp_key_files()
            .iter()
            .map(|p| onionpkg_trust::sign::SecretKey::read_file(p, None).expect("a key file"))
            .collect()
    }

    /// The arguments of `command` for this repository and its keys at
    /// [`NAME`], then `extra`.
    pub(crate) fn args(&self, command: &str, extra: &[&str]) -> Vec<String> {
        let (dir, keys) = (self.dir().display(), self.keys_dir().display());
        [
            command,
            "--repo",
            &dir.to_string(),
            "--keys",
            &keys.to_string(),
            "--name",
            NAME,
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    }

    /// The private key files of the timestamp role, sorted.
    pub(crate) fn timestamp_key_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.keys_dir())
            .expect("listing keys")
            .map(|e| e.expect("a dir entry").path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("timestamp") && n.ends_with(".key"))
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no timestamp key files");
        files
    }

    /// Signs the current state for `owner` and `channel`, issued at
    /// `issued` and valid for `valid_for` (at most: until the timestamp
    /// expires).
    pub(crate) fn sign_at(
        &self,
        owner: &str,
        channel: &str,
        issued: Timestamp,
        valid_for: SignedDuration,
    ) -> Signed {
        sign(
            &self.repo,
            Signers::KeyDir(&self.keys),
            owner,
            channel,
            Validity::AtMost(valid_for),
            issued,
        )
        .expect("signing an announcement")
    }

    /// Signs the current state at [`NAME`] for `stable`, valid for a day.
    pub(crate) fn sign_now(&self) -> Signed {
        self.sign_at(
            NAME,
            "stable",
            Timestamp::now(),
            SignedDuration::from_hours(24),
        )
    }
}

/// What a run of the binary gave.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// The stdout as one JSON object; for a failed run, the error report
    /// (the last line of stderr, where every onionpkg program puts it), and
    /// then stdout must be empty.
    pub(crate) fn json(&self) -> serde_json::Value {
        if self.code != 0 {
            assert!(
                self.stdout.trim().is_empty(),
                "output of a failed run: {self:?}"
            );
            // stderr is a pipe here: JSON lines only (log lines too), no colour.
            assert!(!self.stderr.contains('\x1b'), "colour on stderr: {self:?}");
            for l in self.stderr.lines().filter(|l| !l.trim().is_empty()) {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?} in {self:?}"));
            }
            let line = self.stderr.lines().last().unwrap_or_default();
            return serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("no JSON error on stderr ({e}): {self:?}"));
        }
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {self:?}"))
    }

    /// Asserts the exit code, showing the output otherwise.
    pub(crate) fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }
}

/// The binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_onionpkg-announce")
}

/// Runs the binary with `args` and waits for it, within [`DEADLINE`].
pub(crate) async fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = tokio::process::Command::new(bin());
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("onionpkg-announce did not finish in time")
        .expect("running onionpkg-announce");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `check NAME --root ROOT --server SERVER` plus `extra`.
pub(crate) async fn check(root: &Path, server: SocketAddr, extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec![
        "check".into(),
        NAME.into(),
        "--root".into(),
        root.display().to_string(),
        "--server".into(),
        server.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run(args).await
}

/// The built-in server, in this process, on a free port of 127.0.0.1.
pub(crate) struct InProcess {
    pub(crate) zone: AnnounceZone,
    pub(crate) listening: Listening,
}

impl InProcess {
    /// Serves [`ZONE`] with `record` at [`NAME`] (none: no record).
    pub(crate) async fn start(record: Option<&str>) -> Self {
        let zone = AnnounceZone::new(ZONE, NAME, 60, None).expect("a zone");
        zone.set_record(record).await.expect("setting the record");
        let listening = listen(&zone, &["127.0.0.1:0".parse().expect("an address")])
            .await
            .expect("listening");
        Self { zone, listening }
    }

    /// The address it answers on (UDP and TCP).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.listening.local_addrs()[0]
    }

    /// Stops it.
    pub(crate) async fn stop(self) {
        tokio::time::timeout(DEADLINE, self.listening.shutdown())
            .await
            .expect("the server did not stop in time")
            .expect("stopping the server");
    }
}

/// A query as a resolver sends it (EDNS, 1232 bytes), without recursion,
/// with `padding` bytes of EDNS padding (RFC 7830; none for 0), encoded.
pub(crate) fn query_bytes(id: u16, name: &str, rtype: RecordType, padding: usize) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.metadata.recursion_desired = false;
    msg.add_query(Query::query(
        Name::from_ascii(format!("{name}.")).expect("a name"),
        rtype,
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if padding > 0 {
        edns.options_mut()
            .insert(EdnsOption::Unknown(12, vec![0; padding]));
    }
    msg.edns = Some(edns);
    msg.to_vec().expect("encoding the query")
}

/// One query over TCP (blocking, with a deadline). Returns the response and
/// the sizes of query and response, without the length prefixes.
pub(crate) fn tcp_query(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
) -> (Message, usize, usize) {
    use std::io::{Read as _, Write as _};
    let query = query_bytes(0x7c9, name, rtype, 0);
    let mut stream =
        std::net::TcpStream::connect_timeout(&server, DEADLINE).expect("a TCP connection");
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("a read timeout");
    let mut framed = u16::try_from(query.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    stream.write_all(&framed).expect("sending the query");
    let mut prefix = [0u8; 2];
    stream
        .read_exact(&mut prefix)
        .expect("a TCP response in time");
    let mut response = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream
        .read_exact(&mut response)
        .expect("the whole response");
    let msg = Message::from_vec(&response).expect("decoding the response");
    assert_eq!(msg.metadata.id, 0x7c9);
    (msg, query.len(), response.len())
}

/// One query over UDP, as a resolver sends it (EDNS, 1232 bytes), without
/// recursion. Returns the response and the sizes of query and response.
pub(crate) fn udp_query(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
) -> (Message, usize, usize) {
    udp_exchange(server, &query_bytes(0x5eed, name, rtype, 0))
}

/// Sends `query` (id 0x5eed) over UDP and waits for its response.
pub(crate) fn udp_exchange(server: SocketAddr, query: &[u8]) -> (Message, usize, usize) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    socket.send_to(query, server).expect("sending the query");
    let mut buf = vec![0u8; 65_535];
    let (len, from) = socket.recv_from(&mut buf).expect("a UDP response in time");
    assert_eq!(from, server);
    let response = Message::from_vec(&buf[..len]).expect("decoding the response");
    assert_eq!(response.metadata.id, 0x5eed);
    (response, query.len(), len)
}

/// The TXT records of an answer, each record's strings joined.
pub(crate) fn txt_of(msg: &Message) -> Vec<String> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

/// Calls `probe` until it returns `Some`, at most until `deadline` from now,
/// pausing `every` between attempts. Panics with `what` on timeout.
pub(crate) async fn poll_until<T, F, Fut>(what: &str, every: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

/// Writes `announce.toml` for `serve` in the repository's temp dir.
pub(crate) fn serve_config(repo: &TestRepo) -> PathBuf {
    let keys: Vec<String> = repo
        .timestamp_key_files()
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let text = format!(
        "zone = \"{ZONE}\"\nname = \"{NAME}\"\nchannel = \"stable\"\nttl = 60\n\
         repo = {:?}\ntimestamp_keys = [{}]\n\n[serve]\nlisten = [\"127.0.0.1:0\"]\n",
        repo.dir().display().to_string(),
        keys.join(", ")
    );
    let path = repo.tmp.path().join("announce.toml");
    std::fs::write(&path, text).expect("writing announce.toml");
    path
}
