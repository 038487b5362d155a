//! Member ids: the client id, cut to a bound and to printable characters, a sequence
//! number and a random part.

/// How much of a client id a member id carries (Kafka copies all of it; a 32 KiB client
/// id would then be stored and sent back in every group answer).
pub const MEMBER_ID_CLIENT_ID_MAX: usize = 64;

/// A new member id for a client (`seq` distinguishes ids made by one group).
pub fn new(client_id: &str, seq: u64) -> String {
    let mut prefix: String = client_id
        .chars()
        .filter(|c| !c.is_control())
        .take(MEMBER_ID_CLIENT_ID_MAX)
        .collect();
    while prefix.len() > MEMBER_ID_CLIENT_ID_MAX {
        prefix.pop();
    }
    if prefix.is_empty() {
        prefix.push_str("member");
    }
    format!("{prefix}-{seq}-{}", uuid::Uuid::new_v4().simple())
}
