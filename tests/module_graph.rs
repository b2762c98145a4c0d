//! The library's imports point one way: the module graph built from the `use` lines and paths
//! of `src/` (test modules left out) has no circle, and the read path imports nothing of the
//! write path. `docs/ARCHITECTURE.md` draws the layers these tests hold the code to.
//!
//! - A module is a file: `src/fs/write/writer.rs` is `fs::write::writer`, a `mod.rs` is its
//!   directory's module, `src/lib.rs` the crate root.
//! - An edge `a -> b` is a path in `a` (`use crate::..`, `use super::..`, or one written out in
//!   the code) that resolves to module `b`: the deepest module the path names.
//! - A `mod.rs` re-exporting its own submodules (`pub use kept::KeptCopy`, `pub mod kept`) is
//!   a facade, not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

struct Source {
    module: Module,
    /// `mod.rs` or `lib.rs`: its module is its directory.
    is_dir_module: bool,
    code: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The library's sources (not the programs in `src/bin` or `src/main.rs`), without comments
/// and without their `#[cfg(test)] mod tests` (last in a file, by the project's layout).
fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if parts[0] == "bin" || parts == ["main.rs"] {
            continue;
        }
        let file = parts.last().unwrap().clone();
        let is_dir_module = file == "mod.rs" || file == "lib.rs";
        let mut module: Module = parts[..parts.len() - 1].to_vec();
        if !is_dir_module {
            module.push(file.trim_end_matches(".rs").to_string());
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let mut code = String::new();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let next = lines.get(i + 1).map(|l| l.trim_start()).unwrap_or("");
            if t.starts_with("#[cfg(test)]") && next.starts_with("mod tests") {
                break;
            }
            let without_comment = match line.find("//") {
                Some(at) => &line[..at],
                None => line,
            };
            code.push_str(without_comment);
            code.push('\n');
        }
        out.push(Source {
            module,
            is_dir_module,
            code,
        });
    }
    out
}

/// The full paths a `use` tree names: `a::{b, c::{d, e}}` is `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap().to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.len() - 1];
    let mut items = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    items.push(cur);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .flat_map(|i| expand(&i))
        .map(|i| format!("{prefix}{i}"))
        .collect()
}

/// Every path of the code that starts at `crate`, `super` or `self`, with whether it is a
/// `pub use` (a re-export).
fn paths(code: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = code;
    // `use` statements, whole trees.
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let boundary = before
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == '}');
        let after = &rest[at + 4..];
        let end = after.find(';').unwrap_or(after.len());
        if boundary {
            let public = before.trim_end().ends_with("pub") || before.trim_end().ends_with(')');
            let tree = &after[..end];
            if ["crate", "super", "self"]
                .iter()
                .any(|r| tree.trim_start().starts_with(r))
            {
                out.extend(expand(tree).into_iter().map(|p| (p, public)));
            }
        }
        rest = &after[end.min(after.len())..];
    }
    // Paths written out in the code: `crate::fs::attr::FileKind`, `super::meta::put_options`.
    let bytes = code.as_bytes();
    for root in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(found) = code[from..].find(root) {
            let start = from + found;
            let word_start = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric()
                    || bytes[start - 1] == b'_'
                    || bytes[start - 1] == b':');
            let mut end = start;
            while end < bytes.len()
                && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
            {
                end += 1;
            }
            if word_start {
                out.push((code[start..end].trim_end_matches(':').to_string(), false));
            }
            from = end.max(start + 1);
        }
    }
    out
}

/// The module `path` (as written in `from`) names: the deepest known module along it.
fn resolve(path: &str, from: &Source, modules: &BTreeSet<Module>) -> Option<Module> {
    let mut segs = path.split("::").filter(|s| !s.is_empty()).peekable();
    let mut at: Module = match segs.peek().copied() {
        Some("crate") => {
            segs.next();
            Vec::new()
        }
        Some("self") => {
            segs.next();
            from.module.clone()
        }
        Some("super") => {
            let mut m = from.module.clone();
            while segs.peek() == Some(&"super") {
                segs.next();
                m.pop()?;
            }
            m
        }
        _ => return None,
    };
    for s in segs {
        let mut next = at.clone();
        next.push(s.to_string());
        if !modules.contains(&next) {
            break;
        }
        at = next;
    }
    Some(at)
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let sources = sources();
    let modules: BTreeSet<Module> = sources.iter().map(|s| s.module.clone()).collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for s in &sources {
        let out = edges.entry(s.module.clone()).or_default();
        for (p, public) in paths(&s.code) {
            let Some(to) = resolve(&p, s, &modules) else {
                continue;
            };
            let own_submodule = to.len() > s.module.len() && to.starts_with(&s.module);
            if to == s.module || (s.is_dir_module && public && own_submodule) {
                continue;
            }
            out.insert(to);
        }
    }
    edges
}

/// The strongly connected components with more than one module (Tarjan).
fn circles(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct T<'a> {
        g: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Module) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let Some(w) = t.g.get_key_value(w).map(|(k, _)| k) else {
                continue;
            };
            if !t.index.contains_key(w) {
                visit(t, w);
                let l = t.low[w].min(t.low[v]);
                t.low.insert(v, l);
            } else if t.on.contains(w) {
                let l = t.index[w].min(t.low[v]);
                t.low.insert(v, l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                c.push(w.clone());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn the_graph_is_read_from_the_sources() {
    let g = graph();
    let has = |from: &str, to: &str| {
        g.iter()
            .any(|(m, e)| name(m) == from && e.iter().any(|t| name(t) == to))
    };
    // Known edges, so that a parser that finds nothing cannot pass the tests below.
    assert!(
        has("fs::reader", "fs::cache"),
        "{:?}",
        g.keys().map(name).collect::<Vec<_>>()
    );
    assert!(has("fs::write::writer", "fs::scratch"));
    assert!(has("cos::ops", "object::types") || has("cos::ops", "object"));
    assert!(g.len() > 80, "only {} modules", g.len());
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let found: Vec<Vec<String>> = circles(&graph())
        .iter()
        .map(|c| c.iter().map(name).collect())
        .collect();
    assert!(found.is_empty(), "import circles: {found:?}");
}

#[test]
fn the_read_path_and_the_object_layer_import_no_writer() {
    let g = graph();
    let below_write = [
        "fs::reader",
        "fs::cache",
        "fs::disk_cache",
        "fs::scratch",
        "fs::block",
    ];
    for (m, to) in &g {
        let n = name(m);
        let reader = below_write
            .iter()
            .any(|r| n == *r || n.starts_with(&format!("{r}::")));
        let object_layer = n == "object"
            || n.starts_with("object::")
            || n.starts_with("cos")
            || n.starts_with("local");
        for t in to {
            let t = name(t);
            if reader {
                assert!(!t.starts_with("fs::write"), "{n} imports {t}");
            }
            if object_layer {
                assert!(!t.starts_with("fs"), "{n} imports {t}");
            }
        }
    }
}
