//! `sluice-bench check-history` as a program: exit 0 for a clean history, 1 when a record
//! was lost, 2 for a line it cannot read. (Building this test also builds the binary with
//! the test run's features, which the kill-test step of `.ci/run` then uses.)

use std::path::PathBuf;
use std::process::Command;

fn history(name: &str, lines: &[&str]) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "sluice-bench-cli-{}-{name}.jsonl",
        std::process::id()
    ));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn check(path: &PathBuf) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .arg("check-history")
        .arg(path)
        .output()
        .expect("sluice-bench runs");
    let _ = std::fs::remove_file(path);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const SEND: &str = r#"{"type":"send","client":"p1","topic":"t","partition":0,"value":"p1-1"}"#;
const ACK: &str =
    r#"{"type":"ack","client":"p1","topic":"t","partition":0,"offset":0,"value":"p1-1"}"#;
const READ: &str = r#"{"type":"read","topic":"t","partition":0,"offset":0,"value":"p1-1"}"#;

#[test]
fn a_clean_history_passes() {
    let (code, out) = check(&history("clean", &[SEND, ACK, READ]));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_lost_record_fails() {
    let (code, out) = check(&history("lost", &[SEND, ACK]));
    assert_eq!(code, 1, "{out}");
}

#[test]
fn a_malformed_line_is_an_error() {
    let (code, _) = check(&history("bad", &[SEND, "{not json"]));
    assert_eq!(code, 2);
}
