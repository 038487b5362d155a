//! What a Kafka connection knows about its client, shared by the listener (which creates
//! and authenticates it) and the handlers (which act in its cluster).

/// The virtual cluster the plaintext listener serves.
pub const DEFAULT_CLUSTER: &str = "default";

/// What a connection knows about its client.
#[derive(Debug, Clone)]
pub struct Session {
    /// The virtual cluster this connection acts in.
    pub cluster: String,
    pub peer: String,
    /// The API key the connection authenticated with (SASL or a client certificate);
    /// None on an anonymous connection to `default`. ACLs and quotas name it `User:<id>`.
    pub key_id: Option<String>,
}

impl Session {
    /// A connection that has not authenticated: it acts in the built-in cluster.
    pub fn unauthenticated(peer: String) -> Self {
        Session {
            cluster: DEFAULT_CLUSTER.to_string(),
            peer,
            key_id: None,
        }
    }
}
