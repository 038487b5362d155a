//! What a Kafka connection knows about its client, shared by the listener (which creates
//! and authenticates it) and the handlers (which act in its cluster).

/// The virtual cluster the plaintext listener serves.
pub const DEFAULT_CLUSTER: &str = "default";

/// The listener a connection came in through. Metadata, FindCoordinator and
/// DescribeCluster name every agent by its address on the same listener (Kafka's
/// per-listener metadata), so a TLS client is never sent to a plaintext port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listener {
    /// PLAINTEXT and SASL_PLAINTEXT.
    #[default]
    Plaintext,
    /// SSL and SASL_SSL.
    Tls,
}

/// What a connection knows about its client.
#[derive(Debug, Clone)]
pub struct Session {
    /// The virtual cluster this connection acts in.
    pub cluster: String,
    pub peer: String,
    /// The API key the connection authenticated with (SASL or a client certificate);
    /// None on an anonymous connection to `default`. ACLs and quotas name it `User:<id>`.
    pub key_id: Option<String>,
    pub listener: Listener,
}

impl Session {
    /// A connection that has not authenticated: it acts in the built-in cluster.
    pub fn unauthenticated(peer: String) -> Self {
        Session {
            cluster: DEFAULT_CLUSTER.to_string(),
            peer,
            key_id: None,
            listener: Listener::Plaintext,
        }
    }

    /// The same, come in through `listener`.
    pub fn on(self, listener: Listener) -> Self {
        Session { listener, ..self }
    }
}
