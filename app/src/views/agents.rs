//! The agents page: every live agent of the cluster, with its address, zone, agent group,
//! roles, version, uptime, load (produce and fetch MB/s over its last few seconds, bytes in
//! flight) and last heartbeat (the same list as `GET /api/v1/agents`).

use axum::extract::State;
use leptos::prelude::*;
use tower_sessions::Session;

use super::layout::{page, Nav};
use super::{fmt_bytes, fmt_time, html, Page, SignedIn};
use crate::auth::take_flash;
use crate::AppState;

/// "3d 4h", "2h 5m", "40s": how long an agent has been up.
fn uptime(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", s % 60)
    } else {
        format!("{s}s")
    }
}

/// "12.3 MB/s", "0.0 MB/s": a byte rate in decimal megabytes, as throughput is quoted.
fn mb_per_s(bytes_per_s: i64) -> String {
    format!("{:.1} MB/s", bytes_per_s.max(0) as f64 / 1e6)
}

pub async fn show(State(c): State<AppState>, session: Session, SignedIn(viewer): SignedIn) -> Page {
    Page(
        async {
            let now = broker::clock::now_ms();
            let agents = c.view.agents();
            let rows = agents
                .into_iter()
                .map(|v| {
                    let a = v.agent;
                    let here = v.this_agent.then_some(" (this agent)");
                    let seen = format!("{:.1} s ago", (now - a.last_seen_ms).max(0) as f64 / 1000.0);
                    view! {
                        <tr>
                            <td>{a.node_id}{here}</td>
                            <td><code>{v.advertised}</code></td>
                            <td>{a.rack.unwrap_or_else(|| "-".to_string())}</td>
                            <td>{a.agent_group}</td>
                            <td>{a.roles.join(", ")}</td>
                            <td>{a.version}</td>
                            <td title=fmt_time(a.started_at_ms)>{uptime(now - a.started_at_ms)}</td>
                            <td class="num">{mb_per_s(a.load.produce_bytes_per_s)}</td>
                            <td class="num">{mb_per_s(a.load.fetch_bytes_per_s)}</td>
                            <td class="num">{fmt_bytes(a.load.inflight_bytes)}</td>
                            <td>{seen}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let body = view! {
                <section class="card">
                    <p class="hint">"Every agent serving this cluster's database and bucket. Start another with the same --database-url and --bucket-url to add capacity; stop one to remove it."</p>
                    <table id="agents">
                        <thead><tr><th>"Node"</th><th>"Address"</th><th>"Zone"</th><th>"Agent group"</th><th>"Roles"</th><th>"Version"</th><th>"Uptime"</th><th>"Produce"</th><th>"Fetch"</th><th>"In flight"</th><th>"Last heartbeat"</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </section>
            }
            .into_any();
            Ok(html(page(&viewer, Nav::Agents, "Agents", take_flash(&session).await, body)))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::{mb_per_s, uptime};

    #[test]
    fn rates() {
        assert_eq!(mb_per_s(0), "0.0 MB/s");
        assert_eq!(mb_per_s(12_345_678), "12.3 MB/s");
    }

    #[test]
    fn uptimes() {
        assert_eq!(uptime(40_000), "40s");
        assert_eq!(uptime(125_000), "2m 5s");
        assert_eq!(uptime(2 * 3_600_000 + 300_000), "2h 5m");
        assert_eq!(uptime(3 * 86_400_000 + 4 * 3_600_000), "3d 4h");
    }
}
