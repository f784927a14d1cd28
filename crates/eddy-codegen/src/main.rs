//! eddy-codegen: generates `eddy-protocol`'s message codecs from Kafka's JSON
//! message definitions.
//!
//! Usage: `cargo run -p eddy-codegen -- <kafka-messages dir> <output dir>`
//! (the output dir is normally `crates/eddy-protocol/src/messages`). Every
//! `*.rs` file in the output dir that is not generated again is removed.

mod gen;
mod model;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Parses every definition in `input` and returns the generated files
/// (file name -> formatted content), in a deterministic order.
pub fn generate(input: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(input)
        .map_err(|e| format!("{}: {e}", input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!(
            "{}: no *.json message definitions",
            input.display()
        ));
    }
    let mut msgs = Vec::new();
    for p in &paths {
        let src = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let file = p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        msgs.push(model::parse_message(&src, &file)?);
    }
    let mut files = BTreeMap::new();
    for m in &msgs {
        let code = gen::gen_message(m).map_err(|e| format!("{}: {e}", m.name))?;
        files.insert(format!("{}.rs", gen::module_name(m)), code);
    }
    files.insert("mod.rs".to_string(), gen::gen_mod(&msgs)?);
    for (name, code) in files.iter_mut() {
        *code = rustfmt(code).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(files)
}

/// Formats with `rustfmt` (edition 2021, default style).
fn rustfmt(code: &str) -> Result<String, String> {
    use std::io::Write;
    let rustfmt = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".to_string());
    let mut child = Command::new(rustfmt)
        .args(["--edition", "2021", "--emit", "stdout", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run rustfmt: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no rustfmt stdin")?;
    let input = code.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("rustfmt: {e}"))?;
    writer
        .join()
        .map_err(|_| "rustfmt writer panicked".to_string())?
        .map_err(|e| format!("rustfmt stdin: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "rustfmt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("rustfmt output: {e}"))
}

fn write_files(out_dir: &Path, files: &BTreeMap<String, String>) -> Result<(), String> {
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    for entry in std::fs::read_dir(out_dir).map_err(|e| e.to_string())? {
        let p = entry.map_err(|e| e.to_string())?.path();
        let name = p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if p.extension().is_some_and(|x| x == "rs") && !files.contains_key(&name) {
            std::fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    for (name, code) in files {
        let p = out_dir.join(name);
        if std::fs::read_to_string(&p).ok().as_deref() != Some(code.as_str()) {
            std::fs::write(&p, code).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        eprintln!("usage: eddy-codegen <kafka-messages dir> <output dir>");
        std::process::exit(2);
    }
    let result = generate(Path::new(&args[0])).and_then(|files| {
        write_files(Path::new(&args[1]), &files)?;
        Ok(files.len())
    });
    match result {
        Ok(n) => eprintln!("eddy-codegen: wrote {n} files to {}", args[1]),
        Err(e) => {
            eprintln!("eddy-codegen: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_names() {
        assert_eq!(gen::snake_case("ClientId"), "client_id");
        assert_eq!(gen::snake_case("ThrottleTimeMs"), "throttle_time_ms");
        assert_eq!(gen::snake_case("ISRVersion"), "isr_version");
        assert_eq!(gen::snake_case("KRaftVersion"), "k_raft_version");
        assert_eq!(gen::snake_case("Isr"), "isr");
        assert_eq!(gen::snake_case("Type"), "type");
        assert_eq!(gen::field_ident("Type"), "type_");
        assert_eq!(gen::snake_case("V2Field"), "v2_field");
    }

    #[test]
    fn versions_parse() {
        use model::Versions;
        assert_eq!(
            Versions::parse("0+").unwrap(),
            Versions {
                min: 0,
                max: i16::MAX
            }
        );
        assert_eq!(Versions::parse("1-3").unwrap(), Versions { min: 1, max: 3 });
        assert_eq!(Versions::parse("4").unwrap(), Versions { min: 4, max: 4 });
        assert!(Versions::parse("none").unwrap().is_empty());
    }

    #[test]
    fn comments_are_stripped_outside_strings() {
        let s = model::strip_comments("{ \"a\": \"x//y\" // note\n}\n// whole line\n");
        assert_eq!(s, "{ \"a\": \"x//y\" \n}\n\n");
    }

    /// Like rust-analyzer's codegen check: the committed generated files must
    /// be what the generator produces now.
    #[test]
    fn generated_code_is_up_to_date() {
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let input = crate_dir.join("../../../shared/kafka-messages");
        if !input.is_dir() {
            eprintln!(
                "note: {} not found, skipping the generated-code check",
                input.display()
            );
            return;
        }
        let rustfmt = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".to_string());
        if Command::new(rustfmt).arg("--version").output().is_err() {
            eprintln!("note: rustfmt not found, skipping the generated-code check");
            return;
        }
        let committed = crate_dir.join("../eddy-protocol/src/messages");
        let files = generate(&input).expect("generation failed");
        let tmp = std::env::temp_dir().join(format!("eddy-codegen-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        write_files(&tmp, &files).expect("write to temp dir");
        let mut stale = Vec::new();
        for (name, code) in &files {
            let regenerated = std::fs::read_to_string(tmp.join(name)).expect("read back");
            assert_eq!(&regenerated, code);
            match std::fs::read_to_string(committed.join(name)) {
                Ok(c) if c == *code => {}
                _ => stale.push(name.clone()),
            }
        }
        for entry in std::fs::read_dir(&committed).expect("messages dir") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".rs") && !files.contains_key(&name) {
                stale.push(format!("{name} (not generated any more)"));
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(
            stale.is_empty(),
            "generated code is out of date: {stale:?}\nrun: cargo run -p eddy-codegen -- ../shared/kafka-messages crates/eddy-protocol/src/messages"
        );
    }
}
