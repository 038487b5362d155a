//! The cluster metadata store: topics, partitions, segment files, batch rows, producers.
//!
//! One API over two SQL backends (SQLite embedded, Postgres shared). Each query is written
//! once in portable SQL (`$n` placeholders, `RETURNING`, `ON CONFLICT`) and compiled for
//! both pools through the `with_pool!` dispatch.
//!
//! # Consistency
//! * A segment is committed by one transaction ([`Metadata::commit_segment`]): the file row,
//!   every batch row, the partition heads and the producer states change together or not
//!   at all. On Postgres the partition rows are locked (`FOR UPDATE`) in a fixed order, so
//!   agents committing to the same partitions serialise without deadlocks; SQLite takes
//!   its write lock up front (`BEGIN IMMEDIATE`).
//! * Offsets come only from `partitions.next_offset` inside that transaction, so they have
//!   no gaps and no duplicates whatever the number of agents.

pub mod plan;
mod sql;

pub use sql::{BatchLocation, Metadata, PartitionState, StoreError, TopicMeta};
