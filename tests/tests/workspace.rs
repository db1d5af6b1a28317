//! The workspace's floor plan, checked against the code: the crate graph
//! (`cargo metadata`, `cargo tree`), the diagram in `docs/ARCHITECTURE.md`,
//! and the modules of every crate (no import cycles).
//!
//! These read the workspace's manifests and sources; nothing is built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_owned()
}

/// Runs cargo in the workspace root, offline, and returns its stdout.
fn cargo(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .arg("--offline")
        .current_dir(root())
        .output()
        .context("running cargo")?;
    ensure!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Each workspace package and its normal (not dev, not build) dependencies
/// inside the workspace, from `cargo tree --workspace --depth 1 -e normal`.
fn crate_graph() -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let text = cargo(&[
        "tree",
        "--workspace",
        "--depth",
        "1",
        "-e",
        "normal",
        "--prefix",
        "depth",
        "--no-dedupe",
    ])?;
    let mut roots: Vec<(String, BTreeSet<String>)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (depth, rest) = line.split_at(1);
        let name = rest.split(' ').next().unwrap_or_default().to_owned();
        match depth {
            "0" => roots.push((name, BTreeSet::new())),
            "1" => {
                roots
                    .last_mut()
                    .context("a dependency before any package")?
                    .1
                    .insert(name);
            }
            _ => bail!("unexpected cargo tree line {line:?}"),
        }
    }
    let members: BTreeSet<String> = roots.iter().map(|(n, _)| n.clone()).collect();
    Ok(roots
        .into_iter()
        .map(|(n, deps)| {
            let inside = deps.into_iter().filter(|d| members.contains(d)).collect();
            (n, inside)
        })
        .collect())
}

/// Each package's layer: 0 for a crate that depends on no other, else one
/// above its highest dependency. Fails on a cycle.
fn layers(graph: &BTreeMap<String, BTreeSet<String>>) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut layer = BTreeMap::new();
    while layer.len() < graph.len() {
        let before = layer.len();
        for (name, deps) in graph {
            if layer.contains_key(name) {
                continue;
            }
            if deps.iter().all(|d| layer.contains_key(d)) {
                let l = deps.iter().map(|d| layer[d] + 1).max().unwrap_or(0);
                layer.insert(name.clone(), l);
            }
        }
        ensure!(layer.len() > before, "the crate graph has a cycle");
    }
    Ok(layer)
}

/// The crate diagram of `docs/ARCHITECTURE.md`, as the code has it.
fn diagram(graph: &BTreeMap<String, BTreeSet<String>>) -> anyhow::Result<String> {
    let layer = layers(graph)?;
    let mut rows: Vec<_> = graph.iter().collect();
    rows.sort_by_key(|(name, _)| (layer[*name], (*name).clone()));
    let mut out = String::from("layer  crate                   depends on\n");
    for (name, deps) in rows {
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        let deps = if deps.is_empty() {
            "-".to_owned()
        } else {
            deps.join(", ")
        };
        out += &format!("{:<6} {name:<23} {deps}\n", layer[name]);
    }
    Ok(out)
}

/// The packages that are programs (and their libraries), not test or
/// tooling packages.
const PROGRAMS: [&str; 5] = [
    "onionpkg-fetcher",
    "onionpkg-mirror",
    "onionpkg-announce",
    "onionpkg-repo",
    "onionpkg-signer",
];

/// Whether `from` reaches `to` through normal dependencies.
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(n) = todo.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n.clone()) {
            todo.extend(graph.get(&n).into_iter().flatten().cloned());
        }
    }
    false
}

#[test]
fn the_crate_graph_is_a_tree_of_at_most_four_layers_below_the_programs() -> anyhow::Result<()> {
    let graph = crate_graph()?;
    let layer = layers(&graph)?;
    for program in PROGRAMS {
        let l = *layer.get(program).context(program)?;
        ensure!(
            l <= 4,
            "{program} sits on {l} layers of crates, more than four: {layer:?}"
        );
    }
    ensure!(
        !reaches(&graph, "onionpkg-mirror", "onionpkg-fetcher"),
        "the mirror depends on the fetcher"
    );
    ensure!(
        !reaches(&graph, "onionpkg-fetcher", "onionpkg-mirror"),
        "the fetcher depends on the mirror"
    );
    for client in ["onionpkg-repo", "onionpkg-announce", "onionpkg-mirror"] {
        ensure!(
            !reaches(&graph, client, "onionpkg-signer"),
            "{client} links the signer's own code (PKCS#11, server, key holder); \
             it reaches the signer through onionpkg-signer-client"
        );
    }
    for lib in [
        "onionpkg-core",
        "onionpkg-signer-client",
        "onionpkg-config",
        "onionpkg-trust",
        "onionpkg-net",
    ] {
        for program in PROGRAMS {
            ensure!(
                !reaches(&graph, lib, program),
                "{lib} depends on the program {program}"
            );
        }
    }
    Ok(())
}

#[test]
fn trust_does_not_depend_on_toml_nor_on_the_configuration() -> anyhow::Result<()> {
    let text = cargo(&[
        "tree",
        "-p",
        "onionpkg-trust",
        "-e",
        "normal",
        "--prefix",
        "none",
    ])?;
    for line in text.lines() {
        let name = line.split(' ').next().unwrap_or_default();
        ensure!(
            !matches!(name, "toml" | "toml_edit" | "onionpkg-config"),
            "onionpkg-trust depends on {name}"
        );
    }
    ensure!(
        text.contains("onionpkg-core"),
        "unexpected cargo tree output: {text}"
    );
    Ok(())
}

#[test]
fn the_fetcher_links_the_announcements_query_side_only() -> anyhow::Result<()> {
    let meta: serde_json::Value =
        serde_json::from_str(&cargo(&["metadata", "--no-deps", "--format-version", "1"])?)?;
    let fetcher = meta["packages"]
        .as_array()
        .context("packages")?
        .iter()
        .find(|p| p["name"] == "onionpkg-fetcher")
        .context("no fetcher package")?;
    for dep in fetcher["dependencies"].as_array().context("dependencies")? {
        if dep["name"] == "onionpkg-announce" && dep["kind"].is_null() {
            ensure!(
                dep["uses_default_features"] == false,
                "the fetcher links onionpkg-announce's release side (signing, serving, its command line)"
            );
        }
    }
    Ok(())
}

#[test]
fn the_architecture_diagram_is_the_code_s() -> anyhow::Result<()> {
    let expected = diagram(&crate_graph()?)?;
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md"))?;
    let start = "<!-- crate graph: generated, checked by tests/tests/workspace.rs -->\n```\n";
    let begin = doc
        .find(start)
        .context("no crate graph marker in ARCHITECTURE.md")?
        + start.len();
    let end = begin
        + doc[begin..]
            .find("```")
            .context("unterminated crate graph")?;
    ensure!(
        doc[begin..end] == expected,
        "docs/ARCHITECTURE.md's crate graph is not the code's; it should read:\n{expected}"
    );
    Ok(())
}

/// Top-level modules of a crate's `src` (files and directories, without the
/// crate root).
fn top_modules(src: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut mods = BTreeSet::new();
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() {
            mods.insert(name);
        } else if let Some(stem) = name.strip_suffix(".rs")
            && stem != "lib"
            && stem != "main"
        {
            mods.insert(stem.to_owned());
        }
    }
    Ok(mods)
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The code of a file without comments and without its unit tests, which
/// may use any module.
fn code_of(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |i| &text[..i]);
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first identifiers of the paths in `crate::…` uses of `code`: for
/// `crate::a::b` and `crate::{a, b::c}`, `a` and `b`.
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(ident));
        } else {
            out.push(ident(rest));
        }
    }
    out
}

/// The import graph between the top-level modules of the crate at `dir`.
fn module_graph(dir: &Path) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let src = dir.join("src");
    let mods = top_modules(&src)?;
    let mut graph: BTreeMap<String, BTreeSet<String>> =
        mods.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    for file in files {
        let rel = file.strip_prefix(&src)?;
        let first = rel
            .components()
            .next()
            .context("empty path")?
            .as_os_str()
            .to_string_lossy();
        let owner = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        // Test files may use any module.
        if !mods.contains(&owner) || name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file)?);
        for target in crate_paths(&code) {
            if target != owner && mods.contains(&target) {
                graph.entry(owner.clone()).or_default().insert(target);
            }
        }
    }
    Ok(graph)
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(graph, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(graph, n, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() -> anyhow::Result<()> {
    let meta: serde_json::Value =
        serde_json::from_str(&cargo(&["metadata", "--no-deps", "--format-version", "1"])?)?;
    let mut checked = 0;
    for package in meta["packages"].as_array().context("packages")? {
        let manifest = Path::new(package["manifest_path"].as_str().context("manifest")?);
        let dir = manifest.parent().context("manifest dir")?;
        let graph = module_graph(dir)?;
        if let Some(cycle) = find_cycle(&graph) {
            bail!(
                "{}: modules import each other: {}",
                package["name"],
                cycle.join(" -> ")
            );
        }
        checked += 1;
    }
    ensure!(checked >= 10, "only {checked} crates found");
    Ok(())
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        crate_paths("use crate::{a, b::c};\nlet x = crate::d::e();"),
        ["a", "b", "d"]
    );
}
