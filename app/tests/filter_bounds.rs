//! The message browser's VRL filters stay within their bounds under the binary's allocator
//! (jemalloc): a program that doubles a string until memory runs out is stopped at the
//! per-evaluation memory bound, a program that loops is stopped at its step bound, and the
//! record simply does not match, with the reason told.

use app::filter::{compile, Filters};
use broker::inspect::RecordView;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn record(value: Vec<u8>) -> RecordView {
    RecordView {
        partition: 0,
        offset: 1,
        timestamp_ms: 1_764_028_800_000,
        key: None,
        value: Some(value),
        headers: Vec::new(),
        error: None,
    }
}

#[test]
fn a_program_that_doubles_a_value_stops_at_the_memory_bound() {
    // 40 doublings of 1 MiB would be a TiB.
    let program = format!(
        "x = string!(.value)\n{}length(x) > 0",
        "x = x + x\n".repeat(40)
    );
    let c = compile(&Filters {
        vrl: program,
        ..Filters::default()
    })
    .unwrap()
    .unwrap();
    let started = std::time::Instant::now();
    assert!(!(c.predicate)(&record(vec![b'a'; 1 << 20])));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let errors = c.errors.lock().unwrap();
    assert_eq!(errors.count, 1);
    assert!(
        errors
            .first
            .as_deref()
            .unwrap()
            .contains("MiB on one record"),
        "{errors:?}"
    );
}

#[test]
fn a_program_that_walks_a_huge_array_stops_at_the_step_bound() {
    let c = compile(&Filters {
        vrl: "n = 0\nfor_each(split(string!(.value), \"\")) -> |_i, _v| { n = n + 1 }\nn > 0"
            .into(),
        ..Filters::default()
    })
    .unwrap()
    .unwrap();
    assert!(!(c.predicate)(&record(vec![b'a'; 1 << 20])));
    let errors = c.errors.lock().unwrap();
    assert!(
        errors.first.as_deref().unwrap().contains("steps"),
        "{errors:?}"
    );
}
