//! Runs the shell blocks of the operator guides (docs/*.md) as written, so a
//! guide that drifts from the code fails the tests.
//!
//! Every fenced block tagged `sh`, `bash` or `shell` runs, in document order,
//! with `sh -e -x` in a work directory shared by the guides of one run (the
//! repository RELEASE.md makes is the one MIRROR.md serves), with the
//! onionpkg binaries first on `PATH`. A block fails the guide when it exits
//! with another status than expected (0 unless declared); the failure names
//! the guide, the block's line, the script and its output (the `-x` trace
//! shows the command that failed).
//!
//! A guide adapts its blocks to the test machine with directives, HTML
//! comments a reader of the rendered guide does not see. Each starts with
//! `<!-- guide:` and may span lines up to `-->`:
//!
//! - `replace OLD => NEW`: from here to the guide's end, the text OLD in
//!   every block is replaced by NEW (a later `replace` of the same OLD wins;
//!   replacements apply latest first).
//! - `env NAME=VALUE`: from here to the guide's end, blocks run with the
//!   environment variable NAME set to VALUE.
//! - `skip: REASON`: the next block does not run; the run reports REASON.
//! - `file PATH` / `append PATH`: the next block (a configuration, a JSON
//!   file) is written to, or appended to, PATH in the work directory, after
//!   the replacements.
//! - `before: SHELL`: SHELL runs just before the next block is run or
//!   written (input files, a configuration to append to, or
//!   the broken state a troubleshooting scenario starts from); it must
//!   succeed.
//! - `start HOST:PORT: SHELL`: starts SHELL in the background now (end it
//!   with `exec PROGRAM`, so stopping it stops the service) and waits
//!   until HOST:PORT accepts TCP connections; it is stopped when the run
//!   ends.
//! - `expect exit N`: the next block must exit with status N.
//! - `expect output TEXT`: the next block's output must contain TEXT.
//!
//! In NEW, SHELL, PATH, TEXT and file blocks, `$DIR` is the work directory
//! and `$PORT1` … `$PORT6` are free loopback ports, the same for every guide
//! of a run; `$GUIDE` is a copy of the guide's text (to take an example
//! from it). The work directory also holds `tls-ca.pem`, `tls-cert.pem` and
//! `tls-key.pem`, a test CA and a certificate for 127.0.0.1.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use onionpkg_testkit::retry::until;
use onionpkg_testkit::{Proc, TestCa};

/// How long one block may run.
const BLOCK_DEADLINE: Duration = Duration::from_secs(180);
/// How long a background service may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Fence languages that are run as shell.
const SHELL: [&str; 3] = ["sh", "bash", "shell"];
/// How many loopback ports a run offers.
const PORTS: usize = 6;

/// One directive of a guide.
#[derive(Debug, Clone, PartialEq)]
enum Directive {
    Replace(String, String),
    Env(String, String),
    Skip(String),
    File { path: String, append: bool },
    Before(String),
    Start { addr: String, cmd: String },
    ExpectExit(i32),
    ExpectOutput(String),
}

/// A fenced block with its language, first content line and text.
#[derive(Debug, Clone)]
struct Block {
    lang: String,
    line: usize,
    text: String,
}

/// A guide, as the directives and blocks in document order.
#[derive(Debug)]
enum Item {
    Directive { line: usize, d: Directive },
    Block(Block),
}

/// What a guide's run did.
#[derive(Debug, Default)]
pub(crate) struct GuideReport {
    /// The guide's name.
    pub(crate) guide: String,
    /// Lines of the shell blocks run.
    pub(crate) ran: Vec<usize>,
    /// Lines of the shell blocks skipped, with the reason.
    pub(crate) skipped: Vec<(usize, String)>,
    /// Files written from blocks.
    pub(crate) files: Vec<String>,
}

impl std::fmt::Display for GuideReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} block(s) ran, {} skipped, {} file(s) written",
            self.guide,
            self.ran.len(),
            self.skipped.len(),
            self.files.len()
        )?;
        for (line, why) in &self.skipped {
            writeln!(f, "  skipped line {line}: {why}")?;
        }
        Ok(())
    }
}

fn parse_directive(text: &str) -> anyhow::Result<Directive> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("replace ") {
        let (old, new) = rest
            .split_once(" => ")
            .context("replace needs `OLD => NEW`")?;
        return Ok(Directive::Replace(old.trim().into(), new.trim().into()));
    }
    if let Some(rest) = text.strip_prefix("env ") {
        let (k, v) = rest.split_once('=').context("env needs `NAME=VALUE`")?;
        return Ok(Directive::Env(k.trim().into(), v.trim().into()));
    }
    if let Some(r) = text.strip_prefix("skip:") {
        return Ok(Directive::Skip(r.trim().into()));
    }
    if let Some(p) = text.strip_prefix("file ") {
        return Ok(Directive::File {
            path: p.trim().into(),
            append: false,
        });
    }
    if let Some(p) = text.strip_prefix("append ") {
        return Ok(Directive::File {
            path: p.trim().into(),
            append: true,
        });
    }
    if let Some(s) = text.strip_prefix("before:") {
        return Ok(Directive::Before(s.trim().into()));
    }
    if let Some(rest) = text.strip_prefix("start ") {
        let (addr, cmd) = rest
            .split_once(": ")
            .context("start needs `HOST:PORT: SHELL`")?;
        return Ok(Directive::Start {
            addr: addr.trim().into(),
            cmd: cmd.trim().into(),
        });
    }
    if let Some(n) = text.strip_prefix("expect exit ") {
        return Ok(Directive::ExpectExit(n.trim().parse()?));
    }
    if let Some(t) = text.strip_prefix("expect output ") {
        return Ok(Directive::ExpectOutput(t.trim().into()));
    }
    bail!("unknown directive {text:?}")
}

/// Splits a guide into directives and fenced blocks; `name` is for errors.
fn parse(name: &str, doc: &str) -> anyhow::Result<Vec<Item>> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if let Some(rest) = l.trim_start().strip_prefix("<!-- guide:") {
            let start = i + 1;
            let mut text = String::new();
            let mut rest = rest.to_owned();
            loop {
                if let Some((body, _)) = rest.split_once("-->") {
                    text.push_str(body);
                    break;
                }
                text.push_str(&rest);
                text.push('\n');
                i += 1;
                rest = lines
                    .get(i)
                    .with_context(|| format!("{name}:{start}: unterminated directive"))?
                    .to_string();
            }
            let d = parse_directive(&text).with_context(|| format!("{name}:{start}"))?;
            items.push(Item::Directive { line: start, d });
        } else if let Some(lang) = l.strip_prefix("```") {
            let line = i + 2;
            let mut text = String::new();
            i += 1;
            while i < lines.len() && lines[i] != "```" {
                text.push_str(lines[i]);
                text.push('\n');
                i += 1;
            }
            anyhow::ensure!(i < lines.len(), "{name}:{}: unterminated block", line - 1);
            items.push(Item::Block(Block {
                lang: lang.trim().into(),
                line,
                text,
            }));
        }
        i += 1;
    }
    Ok(items)
}

/// A run of guides: the work directory, the ports and the services started.
pub(crate) struct Run {
    dir: PathBuf,
    bins: PathBuf,
    ports: [u16; PORTS],
    env: Vec<(String, String)>,
    services: Vec<Proc>,
}

impl Run {
    /// A run in `dir` with the binaries in `bins`.
    pub(crate) fn new(dir: &Path, bins: &Path) -> anyhow::Result<Self> {
        let mut ports = [0; PORTS];
        // Held together so the ports differ; released before use.
        let held: Vec<TcpListener> = (0..PORTS)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()?;
        for (p, l) in ports.iter_mut().zip(&held) {
            *p = l.local_addr()?.port();
        }
        drop(held);
        TestCa::new().write(dir, "tls-")?;
        Ok(Self {
            dir: dir.to_owned(),
            bins: bins.to_owned(),
            ports,
            env: Vec::new(),
            services: Vec::new(),
        })
    }

    /// `$DIR`, `$GUIDE` and `$PORTn` replaced.
    fn vars(&self, s: &str) -> String {
        let mut s = s
            .replace("$DIR", &self.dir.to_string_lossy())
            .replace("$GUIDE", &self.dir.join(".guide.md").to_string_lossy());
        for (i, p) in self.ports.iter().enumerate() {
            s = s.replace(&format!("$PORT{}", i + 1), &p.to_string());
        }
        s
    }

    fn command(&self, script: &str) -> anyhow::Result<Command> {
        let path = std::env::join_paths(std::iter::once(self.bins.clone()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))?;
        let mut cmd = Command::new("sh");
        cmd.args(["-e", "-x", "-c", script])
            .current_dir(&self.dir)
            .env("PATH", path)
            .env("HOME", &self.dir)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        Ok(cmd)
    }

    /// Runs `script` to its end (within [`BLOCK_DEADLINE`]): its exit code
    /// (-1 for a signal) and its output, stdout and stderr interleaved.
    fn sh(&self, script: &str) -> anyhow::Result<(i32, String)> {
        let log = self.dir.join(".guide-block.log");
        let mut proc = Proc::spawn("a guide block", self.command(script)?, &log)?;
        let status = until(BLOCK_DEADLINE, "the block to finish", || {
            Ok(proc.child.try_wait()?)
        });
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        let status = status.with_context(|| format!("output so far:\n{output}"))?;
        Ok((status.code().unwrap_or(-1), output))
    }

    fn start(&mut self, addr: &str, script: &str) -> anyhow::Result<()> {
        let n = self.services.len();
        let log = self.dir.join(format!(".guide-service-{n}.log"));
        let proc = Proc::spawn(script, self.command(script)?, &log)?;
        self.services.push(proc);
        let proc = self.services.last_mut().context("pushed")?;
        let up = until(START_DEADLINE, &format!("{addr} to accept"), || {
            if let Some(s) = proc.child.try_wait()? {
                bail!("it exited ({s})");
            }
            Ok(TcpStream::connect(addr).ok())
        });
        up.with_context(|| {
            format!(
                "starting `{script}`; its output:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })?;
        Ok(())
    }

    /// Runs the guide `name` with the text `doc`; its report, or an error
    /// naming the guide, the block's line, the script and its output.
    pub(crate) fn guide(&mut self, name: &str, doc: &str) -> anyhow::Result<GuideReport> {
        self.env.clear();
        std::fs::write(self.dir.join(".guide.md"), doc)?;
        let mut report = GuideReport {
            guide: name.into(),
            ..GuideReport::default()
        };
        let mut replaces: Vec<(String, String)> = Vec::new();
        let mut pending: Vec<(usize, Directive)> = Vec::new();
        for item in parse(name, doc)? {
            let block = match item {
                Item::Directive { line, d } => {
                    match d {
                        Directive::Replace(old, new) => {
                            replaces.retain(|(o, _)| *o != old);
                            replaces.push((old, self.vars(&new)));
                        }
                        Directive::Env(k, v) => {
                            let v = self.vars(&v);
                            self.env.push((k, v));
                        }
                        Directive::Start { addr, cmd } => {
                            let (addr, cmd) = (self.vars(&addr), self.vars(&cmd));
                            self.start(&addr, &cmd)
                                .with_context(|| format!("{name}:{line}: start {addr}"))?;
                        }
                        d => pending.push((line, d)),
                    }
                    continue;
                }
                Item::Block(b) => b,
            };
            let directives = std::mem::take(&mut pending);
            let mut text = block.text.clone();
            // The latest first, so a later, longer OLD wins over an earlier
            // one it contains.
            for (old, new) in replaces.iter().rev() {
                text = text.replace(old, new);
            }
            let text = self.vars(&text);
            let mut expect_exit = 0;
            let mut expect_output = Vec::new();
            let mut before = Vec::new();
            let mut file = None;
            let mut skip = None;
            for (_, d) in directives {
                match d {
                    Directive::Skip(r) => skip = Some(r),
                    Directive::File { path, append } => file = Some((self.vars(&path), append)),
                    Directive::Before(s) => before.push(self.vars(&s)),
                    Directive::ExpectExit(n) => expect_exit = n,
                    Directive::ExpectOutput(t) => expect_output.push(self.vars(&t)),
                    Directive::Replace(..) | Directive::Env(..) | Directive::Start { .. } => {
                        unreachable!("acted on where they stand")
                    }
                }
            }
            let at = format!("{name}:{}", block.line);
            let shell = SHELL.contains(&block.lang.as_str());
            if file.is_some() || (shell && skip.is_none()) {
                for s in before {
                    let (code, out) = self.sh(&s).with_context(|| format!("{at}: before"))?;
                    if code != 0 {
                        bail!(
                            "{at}: the set-up before the block exited {code}:\n{s}\n--- output ---\n{out}"
                        );
                    }
                }
            }
            if let Some((path, append)) = file {
                let path = self.dir.join(path);
                let mut old = if append {
                    std::fs::read_to_string(&path).unwrap_or_default()
                } else {
                    String::new()
                };
                old.push_str(&text);
                std::fs::write(&path, old).with_context(|| format!("{at}: writing the file"))?;
                report.files.push(path.display().to_string());
                continue;
            }
            if !shell {
                continue;
            }
            if let Some(reason) = skip {
                report.skipped.push((block.line, reason));
                continue;
            }
            let (code, out) = self.sh(&text).with_context(|| at.clone())?;
            let mut why = String::new();
            if code != expect_exit {
                let _ = write!(why, "exited {code}, expected {expect_exit}");
            }
            for t in &expect_output {
                if !out.contains(t.as_str()) {
                    let _ = write!(why, "; its output lacks {t:?}");
                }
            }
            if !why.is_empty() {
                bail!(
                    "{at}: the guide's block failed: {}\n--- block ---\n{text}--- output ---\n{out}",
                    why.trim_start_matches("; ")
                );
            }
            report.ran.push(block.line);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_and_unknown_ones_are_refused() {
        let doc = "a\n<!-- guide: replace /srv/repo => $DIR/repo -->\n<!-- guide:\nbefore: touch x\n-->\n```sh\necho hi\n```\n";
        let items = parse("g", doc).unwrap();
        assert!(
            matches!(&items[0], Item::Directive { line: 2, d: Directive::Replace(o, n) } if o == "/srv/repo" && n == "$DIR/repo")
        );
        assert!(
            matches!(&items[1], Item::Directive { line: 3, d: Directive::Before(s) } if s == "touch x")
        );
        assert!(
            matches!(&items[2], Item::Block(b) if b.line == 7 && b.lang == "sh" && b.text == "echo hi\n")
        );
        let err = parse("g.md", "<!-- guide: frobnicate -->\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("g.md:1: unknown directive"),
            "{err:#}"
        );
    }
}
