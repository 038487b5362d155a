//! The message browser's filters: `key_contains`, `value_contains`, `header` (a name, or
//! `name:value`) and a VRL program (the Vector Remap Language) that must give `true` for a
//! record to be shown. They are combined into one predicate the broker runs on each record
//! while it scans ([`broker::inspect::RecordFilter`]).
//!
//! A VRL filter sees a record as `.partition` and `.offset` (integers), `.timestamp` (a
//! timestamp), `.key` and `.value` (bytes, or null) and `.headers` (an object of header name
//! to bytes; the last of repeated names). It is compiled once per page with VRL's standard
//! library (without the network, crypto, system and environment functions); a compile error
//! is refused with the compiler's own message (line, column and hint). A program whose only
//! fault is that it may fail at run time (`parse_json!(string!(.value)).total > 5`) is
//! accepted: a record it fails on does not match. At run time a record on which the program
//! fails otherwise (an `assert!`, a value that is not a boolean) does not match either, and
//! the first such error is shown with the page.
//!
//! # Bounds
//! Each evaluation is bounded: at most [`MAX_STEPS`] expression steps, and at most
//! [`MAX_EVAL_BYTES`] more memory held by the evaluating thread (read from jemalloc's
//! per-thread counters at every step, so `x = x + x` repeated stops at the bound, not when
//! the machine runs out). A page's evaluations together get [`PAGE_TIME`]; past it every
//! record is refused at once, and the page says so. The scan runs the predicate on the
//! blocking pool, never on the threads that serve Kafka.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use broker::inspect::{RecordFilter, RecordView};
use vrl::compiler::runtime::Runtime;
use vrl::compiler::{Program, TargetValue, TimeZone};
use vrl::value::kind::{Collection, Field};
use vrl::value::{KeyString, Kind, Secrets, Value};

use crate::error::Refusal;

/// The longest VRL filter accepted.
pub const MAX_FILTER_LEN: usize = 4096;
/// The longest `key_contains`, `value_contains` or `header` text.
pub const MAX_NEEDLE_LEN: usize = 1024;
/// Expression steps one evaluation of a VRL filter may take.
pub const MAX_STEPS: u32 = 100_000;
/// More memory than at its start one evaluation may hold.
pub const MAX_EVAL_BYTES: u64 = 64 << 20;
/// The time all evaluations of one page may take together.
pub const PAGE_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// The filters of one browse request, as the query string gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub key_contains: String,
    pub value_contains: String,
    /// `name` (the header is present) or `name:value`.
    pub header: String,
    /// A VRL boolean expression.
    pub vrl: String,
}

impl Filters {
    pub fn from_query(q: &std::collections::HashMap<String, String>) -> Filters {
        let get = |k: &str| q.get(k).cloned().unwrap_or_default();
        Filters {
            key_contains: get("key_contains"),
            value_contains: get("value_contains"),
            header: get("header"),
            vrl: get("filter").trim().to_string(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.key_contains.is_empty()
            && self.value_contains.is_empty()
            && self.header.is_empty()
            && self.vrl.is_empty()
    }

    /// The query-string pairs that reproduce these filters (empty ones left out).
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("key_contains", self.key_contains.as_str()),
            ("value_contains", self.value_contains.as_str()),
            ("header", self.header.as_str()),
            ("filter", self.vrl.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }
}

/// Why records did not match beyond a plain `false`: runtime errors of the VRL filter.
#[derive(Debug, Default)]
pub struct FilterErrors {
    pub count: u64,
    pub first: Option<String>,
}

/// A compiled filter, its error tally, and the predicate handed to the scan.
pub struct Compiled {
    pub predicate: Arc<RecordFilter>,
    pub errors: Arc<Mutex<FilterErrors>>,
}

/// Compiles `filters`; None when there is nothing to filter on.
pub fn compile(filters: &Filters) -> Result<Option<Compiled>, Refusal> {
    if filters.is_empty() {
        return Ok(None);
    }
    for (name, text) in [
        ("key_contains", &filters.key_contains),
        ("value_contains", &filters.value_contains),
        ("header", &filters.header),
    ] {
        if text.len() > MAX_NEEDLE_LEN {
            return Err(Refusal::bad_request(format!(
                "The {name} filter is {} bytes long; the most is {MAX_NEEDLE_LEN}.",
                text.len()
            )));
        }
    }
    let program = if filters.vrl.is_empty() {
        None
    } else {
        Some(Arc::new(compile_vrl(&filters.vrl)?))
    };
    let key_needle = filters.key_contains.clone().into_bytes();
    let value_needle = filters.value_contains.clone().into_bytes();
    let (header_name, header_value) = match filters.header.split_once(':') {
        Some((n, v)) => (n.trim().to_string(), Some(v.trim().as_bytes().to_vec())),
        None => (filters.header.trim().to_string(), None),
    };
    let errors = Arc::new(Mutex::new(FilterErrors::default()));
    let tally = errors.clone();
    let deadline = std::time::Instant::now() + PAGE_TIME;
    let predicate = move |r: &RecordView| -> bool {
        if !key_needle.is_empty() && !contains(r.key.as_deref(), &key_needle) {
            return false;
        }
        if !value_needle.is_empty() && !contains(r.value.as_deref(), &value_needle) {
            return false;
        }
        if !header_name.is_empty() {
            let found = r.headers.iter().any(|(k, v)| {
                *k == header_name
                    && header_value
                        .as_ref()
                        .is_none_or(|want| v.as_deref() == Some(want.as_slice()))
            });
            if !found {
                return false;
            }
        }
        match &program {
            None => true,
            Some(p) => match evaluate(p, r, deadline) {
                Ok(b) => b,
                Err(e) => {
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    t.count += 1;
                    if t.first.is_none() {
                        t.first = Some(format!(
                            "offset {} of partition {}: {e}",
                            r.offset, r.partition
                        ));
                    }
                    false
                }
            },
        }
    };
    Ok(Some(Compiled {
        predicate: Arc::new(predicate),
        errors,
    }))
}

fn contains(hay: Option<&[u8]>, needle: &[u8]) -> bool {
    hay.is_some_and(|h| h.windows(needle.len()).any(|w| w == needle))
}

/// Compiles a VRL filter; the compiler's diagnostics (without colour) when it is wrong.
pub fn compile_vrl(source: &str) -> Result<Program, Refusal> {
    if source.len() > MAX_FILTER_LEN {
        return Err(Refusal::bad_request(format!(
            "The VRL filter is {} bytes long; the most is {MAX_FILTER_LEN}.",
            source.len()
        )));
    }
    let fns = vrl::stdlib::all();
    let external = vrl::compiler::state::ExternalEnv::new_with_kind(
        record_kind(),
        Kind::object(Collection::empty()),
    );
    let build = |src: &str| {
        vrl::compiler::compile_with_external(
            src,
            &fns,
            &external,
            vrl::compiler::CompileConfig::default(),
        )
    };
    match build(source) {
        Ok(result) => Ok(result.program),
        Err(diagnostics) => {
            // A filter that may fail at run time (E100, e.g. comparing a parsed field): a
            // record it fails on simply does not match, so accept it as `{ … } ?? false`.
            let only_fallible = diagnostics
                .iter()
                .filter(|d| d.severity.is_error())
                .all(|d| d.code == 100);
            if only_fallible {
                if let Ok(result) = build(&format!("{{ {source} }} ?? false")) {
                    return Ok(result.program);
                }
            }
            let text = vrl::diagnostic::Formatter::new(source, diagnostics).to_string();
            Err(Refusal::bad_request(format!(
                "The VRL filter does not compile:\n{}",
                text.trim_end()
            )))
        }
    }
}

/// The type of [`record_value`], so the compiler knows `.offset` is an integer and `.key`
/// bytes or null (VRL then refuses only what may truly fail).
fn record_kind() -> Kind {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(Field::from("partition"), Kind::integer());
    fields.insert(Field::from("offset"), Kind::integer());
    fields.insert(Field::from("timestamp"), Kind::timestamp());
    fields.insert(Field::from("key"), Kind::bytes().or_null());
    fields.insert(Field::from("value"), Kind::bytes().or_null());
    fields.insert(
        Field::from("headers"),
        Kind::object(Collection::from_unknown(Kind::bytes().or_null())),
    );
    Kind::object(fields)
}

/// The record as the VRL program sees it.
fn record_value(r: &RecordView) -> Value {
    let bytes = |b: &Option<Vec<u8>>| match b {
        Some(b) => Value::Bytes(b.clone().into()),
        None => Value::Null,
    };
    let mut headers = vrl::value::ObjectMap::new();
    for (k, v) in &r.headers {
        headers.insert(KeyString::from(k.as_str()), bytes(v));
    }
    let timestamp = chrono_ts(r.timestamp_ms);
    let mut obj = vrl::value::ObjectMap::new();
    obj.insert("partition".into(), Value::Integer(r.partition as i64));
    obj.insert("offset".into(), Value::Integer(r.offset));
    obj.insert("timestamp".into(), timestamp);
    obj.insert("key".into(), bytes(&r.key));
    obj.insert("value".into(), bytes(&r.value));
    obj.insert("headers".into(), Value::Object(headers));
    Value::Object(obj)
}

fn chrono_ts(ms: i64) -> Value {
    match chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms) {
        Some(t) => Value::Timestamp(t),
        None => Value::Integer(ms),
    }
}

/// The current thread's jemalloc counters (bytes allocated, bytes freed), looked up once per
/// evaluation: each read after that is a plain load, not a `mallctl` call. None where
/// jemalloc cannot say: then only the step bound applies.
type Counters = (
    tikv_jemalloc_ctl::thread::ThreadLocal<u64>,
    tikv_jemalloc_ctl::thread::ThreadLocal<u64>,
);

fn thread_counters() -> Option<Counters> {
    use tikv_jemalloc_ctl::thread::{allocatedp, deallocatedp};
    Some((allocatedp::read().ok()?, deallocatedp::read().ok()?))
}

/// The bytes the current thread holds.
fn held((allocated, freed): Counters) -> u64 {
    allocated.get().wrapping_sub(freed.get())
}

/// Why an evaluation was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    Steps,
    Memory,
    Time,
}

/// Runs the program on one record: true only when it gives the boolean `true`.
fn evaluate(
    program: &Program,
    r: &RecordView,
    deadline: std::time::Instant,
) -> Result<bool, String> {
    if std::time::Instant::now() >= deadline {
        return Err(format!(
            "the filter ran out of time ({} s per page); narrow the search (a partition, a start offset or time, a key or value filter first)",
            PAGE_TIME.as_secs()
        ));
    }
    let mut target = TargetValue {
        value: record_value(r),
        metadata: Value::Object(Default::default()),
        secrets: Secrets::default(),
    };
    let mut steps = 0u32;
    let counters = thread_counters();
    let start = counters.map(held);
    let mut stopped = None;
    let mut control = || {
        steps += 1;
        let why = if steps > MAX_STEPS {
            Some(Stopped::Steps)
        } else if let (Some(s), Some(c)) = (start, counters) {
            let now = held(c);
            (now.saturating_sub(s) > MAX_EVAL_BYTES).then_some(Stopped::Memory)
        } else {
            None
        };
        let why = why.or_else(|| {
            (steps.is_multiple_of(64) && std::time::Instant::now() >= deadline)
                .then_some(Stopped::Time)
        });
        match why {
            Some(w) => {
                stopped = Some(w);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    };
    let mut runtime = Runtime::default();
    let utc = TimeZone::parse("UTC").unwrap_or_default();
    let result = runtime.resolve_with_control(&mut target, program, &utc, &mut control);
    match stopped {
        Some(Stopped::Steps) => {
            return Err(format!(
                "the filter took more than {MAX_STEPS} steps on one record"
            ))
        }
        Some(Stopped::Memory) => {
            return Err(format!(
                "the filter needed more than {} MiB on one record",
                MAX_EVAL_BYTES >> 20
            ))
        }
        Some(Stopped::Time) => {
            return Err(format!(
                "the filter ran out of time ({} s per page)",
                PAGE_TIME.as_secs()
            ))
        }
        None => {}
    }
    match result {
        Ok(Value::Boolean(b)) => Ok(b),
        Ok(other) => Err(format!(
            "the filter gave {} instead of true or false",
            other.kind_str()
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: i64, key: &str, value: &str, headers: &[(&str, &str)]) -> RecordView {
        RecordView {
            partition: 1,
            offset,
            timestamp_ms: 1_764_028_800_000,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.as_bytes().to_vec())))
                .collect(),
            error: None,
        }
    }

    fn matches(f: Filters, r: &RecordView) -> bool {
        (compile(&f).unwrap().unwrap().predicate)(r)
    }

    #[test]
    fn plain_filters() {
        let r = rec(5, "order-17", r#"{"qty":3}"#, &[("type", "created")]);
        let f = |k: &str, v: &str, h: &str| Filters {
            key_contains: k.into(),
            value_contains: v.into(),
            header: h.into(),
            vrl: String::new(),
        };
        assert!(matches(f("der-1", "", ""), &r));
        assert!(!matches(f("zzz", "", ""), &r));
        assert!(matches(f("", "\"qty\"", "type"), &r));
        assert!(matches(f("", "", "type:created"), &r));
        assert!(!matches(f("", "", "type:deleted"), &r));
        assert!(!matches(f("", "", "missing"), &r));
        assert!(compile(&Filters::default()).unwrap().is_none());
    }

    #[test]
    fn vrl_filters_see_the_record() {
        let r = rec(
            7,
            "order-17",
            r#"{"qty":3,"price":2.5}"#,
            &[("type", "created")],
        );
        let v = |src: &str| Filters {
            vrl: src.into(),
            ..Filters::default()
        };
        assert!(matches(v(".offset == 7 && .partition == 1"), &r));
        assert!(matches(v(r#"starts_with(string!(.key), "order-")"#), &r));
        assert!(matches(v(r#"contains(string(.key) ?? "", "17")"#), &r));
        assert!(matches(v(r#".headers.type == "created""#), &r));
        assert!(matches(v("parse_json!(string!(.value)).qty == 3"), &r));
        // Fallible comparisons are accepted: failing records do not match.
        assert!(matches(v("parse_json!(string!(.value)).qty > 2"), &r));
        assert!(!matches(v("parse_json!(string!(.key)).qty > 2"), &r));
        assert!(matches(v("x = .offset\nx == 7"), &r), "several statements");
        assert!(matches(
            v("to_unix_timestamp(.timestamp) == 1764028800"),
            &r
        ));
        assert!(!matches(v(".offset > 7"), &r));
        // A runtime error does not match, and is told.
        let c = compile(&v(r#"parse_json!(string!(.key)).x == 1"#))
            .unwrap()
            .unwrap();
        assert!(!(c.predicate)(&r));
        let errors = c.errors.lock().unwrap();
        assert_eq!(errors.count, 1);
        assert!(
            errors.first.as_deref().unwrap().contains("offset 7"),
            "{errors:?}"
        );
    }

    #[test]
    fn vrl_compile_errors_are_told() {
        let err = compile(&Filters {
            vrl: ".offset >".into(),
            ..Filters::default()
        })
        .err()
        .unwrap();
        assert!(err.message.contains("does not compile"), "{}", err.message);
        let long = Filters {
            vrl: "true || ".repeat(1000),
            ..Filters::default()
        };
        assert!(compile(&long).is_err());
        // A non-boolean answer never matches.
        let c = compile(&Filters {
            vrl: ".offset".into(),
            ..Filters::default()
        })
        .unwrap()
        .unwrap();
        assert!(!(c.predicate)(&rec(1, "k", "v", &[])));
    }
}
