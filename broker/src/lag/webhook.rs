//! Webhook delivery for lag alerts: a bounded queue, a bounded number of calls at once,
//! one retry, same-host redirects only (see `alerts.rs`, "Retries and bounds").

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::alerts::{webhook_origin, Notification};

/// Notifications waiting for a delivery slot before new ones are dropped.
pub const QUEUE_LEN: usize = 1024;
/// Webhook calls in flight at once.
pub const DELIVERIES_AT_ONCE: usize = 8;
/// How long one webhook call may take, connecting included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects followed (to the same host only).
pub const MAX_REDIRECTS: usize = 3;
/// Calls per notification: the first and one retry.
const ATTEMPTS: u32 = 2;
/// The pause before the retry.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long shutdown waits for deliveries in flight before abandoning them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(6);

/// Delivers notifications in the background: a bounded queue, a bounded number of calls
/// at once, every task on its own tracker. Made by the lag job when it starts and shut
/// down when it stops.
pub struct Notifier {
    /// None when the HTTP client could not be built (then notifications are logged and
    /// dropped).
    queue: Option<mpsc::Sender<Notification>>,
    tasks: TaskTracker,
    /// Abandons deliveries still in flight after [`SHUTDOWN_GRACE`].
    cancel: CancellationToken,
}

impl Notifier {
    /// Starts the delivery task (needs a Tokio runtime).
    pub fn start() -> Notifier {
        let tasks = TaskTracker::new();
        let cancel = CancellationToken::new();
        let queue = match http_client() {
            Ok(client) => {
                let (tx, rx) = mpsc::channel(QUEUE_LEN);
                tasks.spawn(dispatch(client, rx, tasks.clone(), cancel.clone()));
                Some(tx)
            }
            Err(e) => {
                tracing::warn!(
                    error = %describe(&e),
                    "lag alert webhooks are off: the http client could not be built"
                );
                None
            }
        };
        Notifier {
            queue,
            tasks,
            cancel,
        }
    }

    /// Queues a notification; never waits. Dropped with a warning when the queue is full.
    pub fn send(&self, n: Notification) {
        let Some(queue) = &self.queue else {
            tracing::warn!(rule = %n.rule_id, status = n.status.as_str(), "lag alert webhook not sent: webhooks are off");
            return;
        };
        if let Err(e) = queue.try_send(n) {
            let (n, why) = match e {
                mpsc::error::TrySendError::Full(n) => (n, "too many webhook calls waiting"),
                mpsc::error::TrySendError::Closed(n) => (n, "the delivery task has stopped"),
            };
            tracing::warn!(
                rule = %n.rule_id,
                cluster = %n.cluster,
                group = %n.group,
                status = n.status.as_str(),
                "lag alert webhook dropped: {why}"
            );
        }
    }

    /// Stops taking notifications, lets the queued and in-flight ones finish for a few
    /// seconds, then abandons the rest.
    pub async fn shutdown(mut self) {
        // Dropping the sender ends the dispatcher once it has handed out what is queued.
        self.queue = None;
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("lag alert webhooks still in flight at shutdown; abandoning them");
            self.cancel.cancel();
            self.tasks.wait().await;
        }
    }
}

/// The client webhooks are posted with. Without CA certificates on the system (a minimal
/// container) the platform verifier cannot start: then the client trusts no certificate,
/// so http webhooks still work and https ones fail their handshake, saying so.
fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    let e = match client_builder().build() {
        Ok(client) => return Ok(client),
        Err(e) => e,
    };
    let no_roots = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions();
    let Ok(no_roots) = no_roots else {
        return Err(e);
    };
    tracing::warn!(
        error = %describe(&e),
        "lag alert webhooks: no usable CA certificates on this system; https webhooks will fail"
    );
    let tls = no_roots
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    client_builder().tls_backend_preconfigured(tls).build()
}

/// A timeout per call, redirects only to the same host.
fn client_builder() -> reqwest::ClientBuilder {
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        let same_host = attempt
            .previous()
            .first()
            .is_some_and(|first| first.host_str() == attempt.url().host_str());
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if same_host {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .connect_timeout(WEBHOOK_TIMEOUT)
        .redirect(redirects)
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
}

/// Hands queued notifications to delivery tasks, [`DELIVERIES_AT_ONCE`] at a time, until
/// the queue closes or `cancel` fires.
async fn dispatch(
    client: reqwest::Client,
    mut queue: mpsc::Receiver<Notification>,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(DELIVERIES_AT_ONCE));
    loop {
        let next = tokio::select! {
            n = queue.recv() => n,
            _ = cancel.cancelled() => None,
        };
        let Some(n) = next else { break };
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            _ = cancel.cancelled() => break,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { break };
        let client = client.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = deliver(&client, &n) => {}
                _ = cancel.cancelled() => {
                    tracing::warn!(rule = %n.rule_id, status = n.status.as_str(), "lag alert webhook abandoned at shutdown");
                }
            }
            drop(permit);
        });
    }
}

/// Posts one notification, retrying once after a failure worth retrying; logs the outcome.
async fn deliver(client: &reqwest::Client, n: &Notification) {
    let body = match serde_json::to_vec(n) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(rule = %n.rule_id, error = %e, "lag alert webhook not sent: encoding failed");
            return;
        }
    };
    let mut failure = String::new();
    for attempt in 1..=ATTEMPTS {
        match post(client, &n.webhook_url, &body).await {
            Ok(()) => {
                tracing::debug!(rule = %n.rule_id, status = n.status.as_str(), attempt, "lag alert webhook delivered");
                return;
            }
            Err((retry, why)) => {
                failure = why;
                if !retry || attempt == ATTEMPTS {
                    break;
                }
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
    tracing::warn!(
        rule = %n.rule_id,
        cluster = %n.cluster,
        group = %n.group,
        status = n.status.as_str(),
        webhook = %webhook_origin(&n.webhook_url),
        error = %failure,
        "lag alert webhook failed"
    );
}

/// One call: Ok on a 2xx answer, else whether a retry may help and what went wrong.
async fn post(client: &reqwest::Client, url: &str, body: &[u8]) -> Result<(), (bool, String)> {
    let answer = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await
        // Without the URL: its path may be a secret.
        .map_err(|e| (true, describe(&e.without_url())))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let retry = status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
    let why = if status.is_redirection() {
        format!("answered {status} (redirects to another host are not followed)")
    } else {
        format!("answered {status}")
    };
    Err((retry, why))
}

/// An error with its causes, one after the other.
fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
