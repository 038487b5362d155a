//! Console HTTP tests of the message browser (issue 14, points 2 and 3): producing through
//! the API and the page form (and reading the record back over the same path Fetch uses),
//! filters by key, value, header and VRL, paging with cursors older and newer until the
//! end, the note when a search's scan budget or the page's byte cap ends a page, the
//! download as JSON lines, and JSON shown in the producer's field order.

mod common;

use axum::http::StatusCode;
use common::{app, Browser};
use serde_json::{json, Value};

const API: &str = "/api/v1/clusters/default/topics";
const PAGES: &str = "/clusters/default/topics";

async fn produce(b: &mut Browser<'_>, topic: &str, body: Value) -> Value {
    let (status, v) = b
        .json("POST", &format!("{API}/{topic}/messages"), Some(body), true)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

async fn browse(b: &mut Browser<'_>, topic: &str, query: &str) -> Value {
    let (status, v) = b
        .json(
            "GET",
            &format!("{API}/{topic}/messages?{query}"),
            None,
            false,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {v}");
    v
}

fn offsets(page: &Value) -> Vec<i64> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_filter_and_page_through_a_topic() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("ops@example.com", "Ops").await;
    let (status, t) = b
        .json(
            "POST",
            API,
            Some(json!({"name": "orders", "partitions": 1})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");

    // 30 records: even ones are "created", odd ones "paid"; values are JSON.
    for i in 0..30 {
        let kind = if i % 2 == 0 { "created" } else { "paid" };
        let p = produce(
            &mut b,
            "orders",
            json!({
                "key": format!("order-{i}"),
                // Text, so the field order is the producer's (zeta before alpha).
                "value": format!("{{\"zeta\":{i},\"alpha\":\"{kind}\"}}"),
                "headers": {"type": kind},
            }),
        )
        .await;
        assert_eq!(p["partition"], 0);
        assert_eq!(p["offset"], i);
    }

    // Newest first, 10 per page, paged older to the log start.
    let mut page = browse(&mut b, "orders", "limit=10").await;
    assert_eq!(offsets(&page), (20..30).rev().collect::<Vec<_>>());
    assert_eq!(page["newest_first"], true);
    let mut seen = offsets(&page);
    while let Some(next) = page["next"].as_str().map(str::to_string) {
        page = browse(&mut b, "orders", &format!("limit=10&cursor={next}")).await;
        seen.extend(offsets(&page));
    }
    assert_eq!(seen, (0..30).rev().collect::<Vec<_>>(), "every record once");

    // Oldest first from an offset, paged newer to the end (next is null there).
    let mut page = browse(&mut b, "orders", "from=offset&offset=5&limit=12").await;
    let mut seen = offsets(&page);
    while let Some(next) = page["next"].as_str().map(str::to_string) {
        page = browse(&mut b, "orders", &format!("limit=12&cursor={next}")).await;
        seen.extend(offsets(&page));
    }
    assert_eq!(seen, (5..30).collect::<Vec<_>>());
    // The newer cursor of the last page is where the live tail goes on from.
    let tail = page["newer"].as_str().unwrap().to_string();
    produce(
        &mut b,
        "orders",
        json!({"key": "order-30", "value": "late"}),
    )
    .await;
    let fresh = browse(&mut b, "orders", &format!("cursor={tail}")).await;
    assert_eq!(offsets(&fresh), vec![30]);

    // Filters: key, value, header, VRL, combined.
    let p = browse(&mut b, "orders", "key_contains=order-1").await;
    let mut got = offsets(&p);
    got.sort();
    assert_eq!(got, vec![1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    let p = browse(&mut b, "orders", "header=type:paid&limit=500").await;
    assert_eq!(offsets(&p).len(), 15);
    let p = browse(&mut b, "orders", "header=type&value_contains=created").await;
    assert_eq!(offsets(&p).len(), 15);
    let vrl = "parse_json!(string!(.value)).zeta > 25 && .headers.type == \"created\"";
    let p = browse(&mut b, "orders", &format!("filter={}", urlencode(vrl))).await;
    assert_eq!(offsets(&p), vec![28, 26]);
    assert!(p["filter_errors"].is_null(), "{p}");
    // A program that fails on some records: they do not match, and the page says so.
    let p = browse(
        &mut b,
        "orders",
        &format!(
            "filter={}",
            urlencode("parse_json!(string!(.value)).zeta == 3")
        ),
    )
    .await;
    assert_eq!(offsets(&p), vec![3]);
    assert_eq!(
        p["filter_errors"]["count"], 1,
        "the 'late' record is not JSON: {p}"
    );
    // A program that does not compile: 400 with the compiler's words.
    let (status, e) = b
        .json(
            "GET",
            &format!("{API}/orders/messages?filter={}", urlencode(".offset >")),
            None,
            false,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("does not compile"),
        "{e}"
    );
    // A damaged cursor: 400, not a panic.
    let (status, e) = b
        .json(
            "GET",
            &format!("{API}/orders/messages?cursor=zz"),
            None,
            false,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");

    // Produce refusals: an unknown partition, a bad body.
    let (status, e) = b
        .json(
            "POST",
            &format!("{API}/orders/messages"),
            Some(json!({"value": "x", "partition": 7})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("no partition 7"),
        "{e}"
    );
    let (status, _) = b
        .json(
            "POST",
            &format!("{API}/orders/messages"),
            Some(json!({"value": "x", "colour": "red"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The page: JSON in the producer's order, the filters kept, the links.
    let page = b
        .get(&format!(
            "{PAGES}/orders/messages?format=json&limit=5&header=type"
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let z = page
        .body
        .find("&quot;zeta&quot;")
        .or_else(|| page.body.find("\"zeta\""));
    let a = page
        .body
        .find("&quot;alpha&quot;")
        .or_else(|| page.body.find("\"alpha\""));
    assert!(z.is_some() && a.is_some() && z < a, "zeta before alpha");
    assert!(page.body.contains("id=\"next\""), "an older page link");
    assert!(page.body.contains("Download as JSON lines"));
    assert!(page.body.contains("id=\"produce-form\""));

    // Download: JSON lines of the same records.
    let dl = b
        .get(&format!("{PAGES}/orders/messages.jsonl?limit=3"))
        .await;
    assert_eq!(dl.status, StatusCode::OK);
    let lines: Vec<Value> = dl
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["offset"], 30);
    assert_eq!(lines[0]["value"], "late");

    // The produce form, and "duplicate this message".
    let dup = b
        .get(&format!("{PAGES}/orders/messages?duplicate=0_4"))
        .await;
    assert!(
        dup.body.contains("order-4"),
        "the form is filled with record 4"
    );
    let posted = b
        .submit(
            &format!("{PAGES}/orders/messages"),
            &format!("{PAGES}/orders/messages"),
            &[
                ("key", "order-4"),
                ("value", "{\"again\":true}"),
                ("headers", "type: copy"),
                ("partition", ""),
            ],
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    let back = b.get(&format!("{PAGES}/orders/messages")).await;
    assert!(
        back.body.contains("Produced to partition 0 at offset 31"),
        "{}",
        back.body
    );
    let p = browse(&mut b, "orders", "header=type:copy").await;
    assert_eq!(offsets(&p), vec![31]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_and_long_searches_say_why_a_page_is_short() {
    let app = app().await;
    let mut b = Browser::new(&app);
    b.sign_up("ops@example.com", "Ops").await;
    let (status, _) = b
        .json(
            "POST",
            API,
            Some(json!({"name": "big", "partitions": 1})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mb = "x".repeat(1_000_000);
    for _ in 0..6 {
        produce(&mut b, "big", json!({"value": mb})).await;
    }
    // 20 asked, 4 MiB per page: a few shown, the note says why, next goes on.
    let p = browse(&mut b, "big", "limit=20").await;
    let n = offsets(&p).len();
    assert!((1..6).contains(&n), "{n} records of 1 MB on one page");
    assert_eq!(p["stopped_by_bytes"], true);
    assert!(p["next"].is_string());
    let page = b.get(&format!("{PAGES}/big/messages?limit=20")).await;
    assert!(
        page.body.contains("id=\"page-note\""),
        "the page says why it is short"
    );
    assert!(page.body.contains("show all"), "long values are collapsed");
    assert!(
        page.body.len() < 200_000,
        "page of {} bytes",
        page.body.len()
    );
    // "show all" shows the whole value of one record.
    let full = b
        .get(&format!(
            "{PAGES}/big/messages?partition=0&from=offset&offset=2&limit=1&full=1"
        ))
        .await;
    assert!(full.body.contains(&mb));
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
