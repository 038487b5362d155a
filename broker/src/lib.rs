//! Sluice's broker: the Kafka wire server and everything behind it.
//!
//! Where to look:
//! * [`server`] accepts connections (plaintext and TLS: certificates, their reload and
//!   client certificates in [`tls`]) and moves frames; [`protocol`] decodes and encodes them
//!   (no I/O); [`handlers`] answers each API.
//! * Produce path: [`handlers::produce`] validates record batches ([`batch`]) and appends them
//!   to the [`writer`], which seals [`segment`] files, uploads them to the [`bucket`] and
//!   commits offsets in one transaction of the metadata [`store`].
//! * Fetch path: [`handlers::fetch`] reads batch rows from the [`store`] and bytes through the
//!   chunk [`cache`], patching base offsets on the way out.
//! * Metadata schema: `migrations/sqlite` and `migrations/postgres`; queries in [`store`]
//!   (virtual clusters in `store/clusters.rs`, API keys in `store/credentials.rs`).
//! * [`decompress`]: the one way Sluice inflates record data (gzip, snappy, lz4, zstd),
//!   streaming and capped, off the async workers; the message browser uses it.
//! * Security inside a cluster: [`acl`] (Kafka ACLs per virtual cluster, the one check the
//!   handlers call, cached per cluster; managed by `handlers/acls.rs`) and [`quota`]
//!   (producer/consumer byte rates per API key, throttling by muting the connection;
//!   managed by `handlers/quotas.rs`); both stored in `store/acls.rs`.
//! * Console door: [`inspect::ClusterView`] is all the web console holds of the broker:
//!   typed reads (clusters, keys, topics, records, groups, lag) and the few admin writes
//!   it offers, through the same code the handlers use, keeping the broker's caches right.
//! * [`state`] is the agent's shared state (low in the house: handlers and jobs use it, it
//!   uses none of them); [`agent`] at the top starts it, spawns every task on one tracker
//!   and shuts them down in order; [`session`] is what a connection knows of its client.
//! * Shared by the handlers and [`inspect`]: [`topics`] (look-up cache, creation with the
//!   cluster's defaults, deletion), [`log`] (reading a stored batch, offsets by time) and
//!   the topic rules in [`topic_config`]. Kafka error codes all live in [`codes`].
//! * Jobs: [`lag`] (consumer-group lag, timestamp-index merge), [`retention`]
//!   (retention and garbage collection) and [`compaction`] (merging small segment files
//!   into large per-partition objects), [`key_compaction`] (`cleanup.policy=compact`:
//!   the last record per key); [`metrics`] are exported by the binary on `/metrics`.
//! * Scale-out: [`membership`] leases this agent's node id, heartbeats it, keeps the list
//!   of live agents and the cluster-wide job leases (tables in the [`store`]); [`placement`]
//!   picks partition leaders and group coordinators among live agents (rendezvous hashing);
//!   [`commit_watch`] wakes this agent's fetches when another agent commits;
//!   [`group_holds`] holds a group empty for an offset reset at whichever agent coordinates it;
//!   [`group_snapshots`] shows groups coordinated elsewhere to this agent's console.
//!
//! This crate owns the Kafka-facing data plane and the cluster metadata (topics, offsets,
//! virtual clusters and their API keys); it does not serve HTTP and knows nothing about
//! console users or teams: those live in the console's own store (the `app` crate).

pub mod acl;
pub mod agent;
pub mod alloc_guard;
pub mod auth;
pub mod batch;
pub mod bucket;
pub mod cache;
pub mod clock;
pub mod codes;
pub mod commit_watch;
pub mod compaction;
pub mod config;
pub mod decompress;
pub mod gate;
pub mod group_holds;
pub mod group_snapshots;
pub mod groups;
pub mod handlers;
pub mod inspect;
pub mod key_compaction;
pub mod lag;
pub mod limits;
pub mod log;
pub mod membership;
pub mod metrics;
pub mod offsets_topic;
pub mod placement;
pub mod protocol;
pub mod quota;
pub mod retention;
pub mod segment;
pub mod server;
pub mod session;
pub mod state;
pub mod store;
pub mod tls;
pub mod topic_config;
pub mod topics;
pub mod txn;
pub mod wakeups;
pub mod writer;

pub use agent::{start, Broker, Running};

// Unit tests decode hostile frames too: run them under the same allocator as the binary.
#[cfg(test)]
#[global_allocator]
static ALLOC: alloc_guard::GuardedAlloc = alloc_guard::GuardedAlloc;
pub use config::BrokerConfig;
pub use metrics::Metrics;
