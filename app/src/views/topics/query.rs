//! The topic list's query: search by part of a name, sort by a column, pages of
//! [`PAGE_SIZE`]. Pure functions, shared by the list page and `GET …/topics` of the API.

use std::collections::HashMap;

use broker::inspect::TopicSummary;

use crate::error::Refusal;
use crate::views::enc;

/// Topics on one page of the list.
pub const PAGE_SIZE: usize = 50;

/// A column the topic list sorts by (`sort=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Name,
    Partitions,
    Records,
    Size,
    Rate,
}

impl SortBy {
    pub fn parse(s: &str) -> Option<SortBy> {
        Some(match s {
            "name" => SortBy::Name,
            "partitions" => SortBy::Partitions,
            "records" => SortBy::Records,
            "size" => SortBy::Size,
            "rate" => SortBy::Rate,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SortBy::Name => "name",
            SortBy::Partitions => "partitions",
            SortBy::Records => "records",
            SortBy::Size => "size",
            SortBy::Rate => "rate",
        }
    }

    /// The direction without `dir=`: names A to Z, numbers largest first (the biggest or
    /// busiest topics are the ones an operator looks for).
    pub fn desc_by_default(self) -> bool {
        self != SortBy::Name
    }
}

/// The list's query: `q` (part of a name, any letter case), `sort`, `dir` (`asc`/`desc`)
/// and `page` (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub q: String,
    pub sort: SortBy,
    pub desc: bool,
    pub page: usize,
}

/// Reads the list's query parameters (shared with `GET /api/v1/clusters/{c}/topics`).
pub fn parse_list_query(q: &HashMap<String, String>) -> Result<ListQuery, Refusal> {
    let get = |k: &str| q.get(k).map(|s| s.trim()).unwrap_or("");
    let sort = match get("sort") {
        "" => SortBy::Name,
        s => SortBy::parse(s).ok_or_else(|| {
            Refusal::bad_request(format!(
                "Topics cannot be sorted by '{s}': use name, partitions, records, size or rate."
            ))
        })?,
    };
    let desc = match get("dir") {
        "" => sort.desc_by_default(),
        "asc" => false,
        "desc" => true,
        d => {
            return Err(Refusal::bad_request(format!(
                "The sort direction '{d}' is unknown: use asc or desc."
            )))
        }
    };
    let page = match get("page") {
        "" => 1,
        p => p.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            Refusal::bad_request(format!("'{p}' is not a page number: pages count from 1."))
        })?,
    };
    Ok(ListQuery {
        q: get("q").to_string(),
        sort,
        desc,
        page,
    })
}

/// The topics whose name contains `q` (ignoring letter case), sorted; ties by name.
pub fn select_topics(
    mut topics: Vec<TopicSummary>,
    q: &str,
    sort: SortBy,
    desc: bool,
) -> Vec<TopicSummary> {
    let needle = q.trim().to_lowercase();
    if !needle.is_empty() {
        topics.retain(|t| t.name.to_lowercase().contains(&needle));
    }
    topics.sort_by(|a, b| {
        let by = match sort {
            SortBy::Name => a.name.cmp(&b.name),
            SortBy::Partitions => a.partitions.cmp(&b.partitions),
            SortBy::Records => a.records.cmp(&b.records),
            SortBy::Size => a.size_bytes.cmp(&b.size_bytes),
            SortBy::Rate => a.records_per_sec.total_cmp(&b.records_per_sec),
        };
        let by = if desc { by.reverse() } else { by };
        by.then_with(|| a.name.cmp(&b.name))
    });
    topics
}

/// Which slice of `total` rows page `page` shows (a page past the end shows the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: usize,
    pub pages: usize,
    /// Rows `start..end` (0-based, `end` exclusive).
    pub start: usize,
    pub end: usize,
    pub total: usize,
}

impl Paging {
    pub fn new(total: usize, page: usize) -> Paging {
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = page.clamp(1, pages);
        let start = (page - 1) * PAGE_SIZE;
        Paging {
            page,
            pages,
            start,
            end: (start + PAGE_SIZE).min(total),
            total,
        }
    }
}

/// A link to the list with this query; defaults are left out.
pub fn list_href(base: &str, q: &str, sort: SortBy, desc: bool, page: usize) -> String {
    let mut params = Vec::new();
    if !q.is_empty() {
        params.push(format!("q={}", enc(q)));
    }
    if sort != SortBy::Name || desc {
        params.push(format!("sort={}", sort.as_str()));
        params.push(format!("dir={}", if desc { "desc" } else { "asc" }));
    }
    if page > 1 {
        params.push(format!("page={page}"));
    }
    if params.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", params.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, partitions: i32, records: i64, size: i64, rate: f64) -> TopicSummary {
        TopicSummary {
            name: name.to_string(),
            partitions,
            size_bytes: size,
            records,
            records_per_sec: rate,
            created_at_ms: 0,
        }
    }

    fn names(t: &[TopicSummary]) -> Vec<&str> {
        t.iter().map(|t| t.name.as_str()).collect()
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn search_and_sort() {
        let all = vec![
            summary("payments", 3, 10, 500, 0.5),
            summary("Orders", 6, 300, 100, 2.0),
            summary("orders.dlq", 1, 2, 10, 0.0),
            summary("audit", 6, 50, 900, 1.0),
        ];
        let by = |q: &str, sort, desc| names(&select_topics(all.clone(), q, sort, desc)).join(",");
        assert_eq!(
            by("", SortBy::Name, false),
            "Orders,audit,orders.dlq,payments"
        );
        assert_eq!(by("ORD", SortBy::Name, false), "Orders,orders.dlq");
        assert_eq!(
            by("", SortBy::Size, true),
            "audit,payments,Orders,orders.dlq"
        );
        assert_eq!(
            by("", SortBy::Rate, true),
            "Orders,audit,payments,orders.dlq"
        );
        // Ties stay in name order whichever way the column is sorted.
        assert_eq!(
            by("", SortBy::Partitions, true),
            "Orders,audit,payments,orders.dlq"
        );
        assert_eq!(
            by("", SortBy::Partitions, false),
            "orders.dlq,payments,Orders,audit"
        );
        assert_eq!(
            by("", SortBy::Records, false),
            "orders.dlq,payments,audit,Orders"
        );
        assert_eq!(by("nothing", SortBy::Name, false), "");
    }

    #[test]
    fn list_queries_parse_with_defaults_and_plain_refusals() {
        let q = parse_list_query(&query(&[])).unwrap();
        assert_eq!(
            (q.sort, q.desc, q.page, q.q.as_str()),
            (SortBy::Name, false, 1, "")
        );
        let q = parse_list_query(&query(&[("sort", "size"), ("q", " ord ")])).unwrap();
        assert_eq!((q.sort, q.desc, q.q.as_str()), (SortBy::Size, true, "ord"));
        let q =
            parse_list_query(&query(&[("sort", "rate"), ("dir", "asc"), ("page", "3")])).unwrap();
        assert_eq!((q.sort, q.desc, q.page), (SortBy::Rate, false, 3));
        let e = parse_list_query(&query(&[("sort", "colour")])).unwrap_err();
        assert!(e.message.contains("'colour'"), "{}", e.message);
        assert!(parse_list_query(&query(&[("dir", "up")])).is_err());
        assert!(parse_list_query(&query(&[("page", "0")])).is_err());
        assert!(parse_list_query(&query(&[("page", "two")])).is_err());
    }

    #[test]
    fn pages_of_fifty() {
        let p = Paging::new(200, 2);
        assert_eq!((p.start, p.end, p.pages), (50, 100, 4));
        let last = Paging::new(120, 9);
        assert_eq!(
            (last.page, last.start, last.end),
            (3, 100, 120),
            "past the end: the last"
        );
        let none = Paging::new(0, 1);
        assert_eq!((none.page, none.pages, none.start, none.end), (1, 1, 0, 0));
    }

    #[test]
    fn links_leave_defaults_out() {
        let base = "/clusters/c/topics";
        assert_eq!(list_href(base, "", SortBy::Name, false, 1), base);
        assert_eq!(
            list_href(base, "a b", SortBy::Size, true, 2),
            "/clusters/c/topics?q=a%20b&sort=size&dir=desc&page=2"
        );
        assert_eq!(
            list_href(base, "", SortBy::Name, true, 1),
            "/clusters/c/topics?sort=name&dir=desc"
        );
    }
}
