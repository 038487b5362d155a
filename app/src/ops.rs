//! Every console action once: who may do it, what input is valid, and the change. Pages
//! and the JSON API both call these, so a rule holds wherever the request comes from.
//!
//! Permissions: members of an organisation read everything of it; owners and admins change
//! things; only owners grant or take away ownership, and the last owner stays. An API key
//! acts only inside its own cluster (topics, messages, consumer groups) and never on the
//! organisation (clusters, keys, team).
//!
//! Actions inside a cluster take the [`ClusterRef`] that [`cluster`] gave the caller (the
//! extractors in [`crate::extract`] look it up once per request), so holding one means
//! the caller may see that cluster; the roles a change needs are checked here.

use broker::inspect::{ApiKeyInfo, ClusterDefaults, VirtualCluster, DEFAULT_CLUSTER};

use crate::auth::{self, Actor, Role, Viewer};
use crate::error::Refusal;
use crate::store::{Invite, InviteProblem, Member, MemberChange, Org, StoreError, User};
use crate::Console;

/// A cluster the caller may see.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterRef {
    pub id: String,
    pub name: String,
    /// The built-in `default` cluster of the plaintext listener (cannot be renamed,
    /// configured or deleted here).
    pub builtin: bool,
    pub created_at_ms: i64,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub default_retention_ms: i64,
    /// Whether Kafka ACLs are enforced (see [`crate::acl_ops`]).
    pub acls_enabled: bool,
}

impl ClusterRef {
    fn from_vc(vc: VirtualCluster) -> Self {
        ClusterRef {
            id: vc.id,
            name: vc.name,
            builtin: false,
            created_at_ms: vc.created_at_ms,
            auto_create_topics: vc.auto_create_topics,
            default_partitions: vc.default_partitions,
            default_retention_ms: vc.default_retention_ms,
            acls_enabled: vc.acls_enabled,
        }
    }

    fn builtin(console: &Console) -> Self {
        let d = console.view.builtin_defaults();
        ClusterRef {
            id: DEFAULT_CLUSTER.to_string(),
            name: "default".to_string(),
            builtin: true,
            created_at_ms: 0,
            auto_create_topics: d.auto_create_topics,
            default_partitions: d.default_partitions,
            default_retention_ms: d.default_retention_ms,
            acls_enabled: false,
        }
    }
}

pub fn check_name(what: &str, name: &str, max: usize) -> Result<(), Refusal> {
    if name.is_empty() {
        return Err(Refusal::bad_request(format!("Give the {what} a name.")));
    }
    // "An organisation", "a cluster": the article follows the sound of the word.
    let a = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "An"
    } else {
        "A"
    };
    if name.chars().count() > max {
        return Err(Refusal::bad_request(format!(
            "{a} {what} name has at most {max} characters."
        )));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(Refusal::bad_request(format!(
            "{a} {what} name cannot contain control characters."
        )));
    }
    Ok(())
}

// ---- accounts ----

pub async fn sign_up(
    console: &Console,
    email: &str,
    password: &str,
    org_name: &str,
) -> Result<(User, Org), Refusal> {
    let email = auth::normalise_email(email);
    auth::check_email(&email)?;
    auth::check_password(password)?;
    check_name("organisation", org_name, 80)?;
    if !console.settings.open_signup && console.platform.user_count().await? > 0 {
        return Err(Refusal::forbidden(
            "Sign-up on this server is by invitation: ask an admin of your organisation for an invite link.",
        ));
    }
    let hash = auth::hash_password(password).await?;
    console
        .platform
        .create_user_with_org(&email, &hash, org_name)
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists(_) => Refusal::conflict(
                "An account with this e-mail address already exists. Log in instead.",
            ),
            other => other.into(),
        })
}

pub async fn sign_up_with_invite(
    console: &Console,
    email: &str,
    password: &str,
    token: &str,
) -> Result<(User, String), Refusal> {
    let email = auth::normalise_email(email);
    auth::check_email(&email)?;
    auth::check_password(password)?;
    let hash = auth::hash_password(password).await?;
    match console
        .platform
        .create_user_with_invite(&email, &hash, &auth::token_hash(token))
        .await
    {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(problem)) => Err(invite_refusal(problem)),
        Err(StoreError::AlreadyExists(_)) => Err(Refusal::conflict(
            "An account with this e-mail address already exists. Log in, then open the invite link again.",
        )),
        Err(e) => Err(e.into()),
    }
}

pub fn invite_refusal(problem: InviteProblem) -> Refusal {
    let status = match problem {
        InviteProblem::Unknown => axum::http::StatusCode::NOT_FOUND,
        InviteProblem::AlreadyMember => axum::http::StatusCode::CONFLICT,
        _ => axum::http::StatusCode::GONE,
    };
    Refusal::new(status, problem.message())
}

/// Checks e-mail and password; a failure says nothing about which one was wrong.
pub async fn log_in(
    console: &Console,
    email: &str,
    password: &str,
    client: &str,
) -> Result<User, Refusal> {
    let email = auth::normalise_email(email);
    // Slowed, never locked: see auth::LoginLimiter.
    let attempt = console.limiter.attempt(&email, client)?;
    if !attempt.delay.is_zero() {
        tokio::time::sleep(attempt.delay).await;
    }
    let found = console.platform.user_by_email(&email).await?;
    let (user, phc) = match found {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    if password.len() <= auth::MAX_PASSWORD && auth::verify_password(password, phc).await {
        if let Some(user) = user {
            console.limiter.succeeded(&email, client);
            return Ok(user);
        }
    }
    console.limiter.failed(&email, client);
    Err(Refusal::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "Wrong e-mail address or password.",
    ))
}

pub async fn accept_invite(console: &Console, user: &User, token: &str) -> Result<String, Refusal> {
    match console
        .platform
        .accept_invite(&auth::token_hash(token), &user.id)
        .await?
    {
        Ok(org) => Ok(org),
        Err(p) => Err(invite_refusal(p)),
    }
}

// ---- clusters ----

pub async fn clusters(console: &Console, viewer: &Viewer) -> Result<Vec<ClusterRef>, Refusal> {
    let mut out = Vec::new();
    if console.owns_default_cluster(&viewer.org.id).await? {
        out.push(ClusterRef::builtin(console));
    }
    out.extend(
        console
            .view
            .virtual_clusters(&viewer.org.id)
            .await?
            .into_iter()
            .map(ClusterRef::from_vc),
    );
    Ok(out)
}

/// A cluster the actor may use, or why not.
pub async fn cluster(console: &Console, actor: &Actor, id: &str) -> Result<ClusterRef, Refusal> {
    let missing = || Refusal::not_found(format!("There is no cluster '{id}' here."));
    match actor {
        Actor::Key { cluster_id, .. } => {
            if cluster_id != id {
                return Err(Refusal::forbidden(format!(
                    "This API key belongs to cluster '{cluster_id}', not '{id}'."
                )));
            }
            let vc = console
                .view
                .virtual_cluster(id)
                .await?
                .ok_or_else(missing)?;
            Ok(ClusterRef::from_vc(vc))
        }
        Actor::Anonymous => {
            if id == DEFAULT_CLUSTER && console.settings.default_cluster_open {
                Ok(ClusterRef::builtin(console))
            } else {
                Err(auth::unauthenticated())
            }
        }
        Actor::User(viewer) => {
            if id == DEFAULT_CLUSTER {
                // The built-in cluster belongs to the first organisation; to any other
                // it does not exist, like another organisation's cluster.
                return if console.owns_default_cluster(&viewer.org.id).await? {
                    Ok(ClusterRef::builtin(console))
                } else {
                    Err(missing())
                };
            }
            let vc = console
                .view
                .virtual_cluster(id)
                .await?
                .ok_or_else(missing)?;
            if vc.org_id != viewer.org.id {
                return Err(missing());
            }
            Ok(ClusterRef::from_vc(vc))
        }
    }
}

/// Changing data inside a cluster: admins, or a key of that cluster.
pub fn require_write(actor: &Actor) -> Result<(), Refusal> {
    match actor {
        Actor::Key { .. } => Ok(()),
        Actor::User(v) => v.require_admin(),
        Actor::Anonymous => Err(auth::unauthenticated()),
    }
}

/// Organisation-level actions need a logged-in user.
pub fn require_user(actor: Actor) -> Result<Viewer, Refusal> {
    match actor {
        Actor::User(v) => Ok(*v),
        Actor::Key { .. } => Err(Refusal::forbidden(
            "API keys act inside their cluster only; this needs a logged-in user.",
        )),
        Actor::Anonymous => Err(auth::unauthenticated()),
    }
}

pub(crate) fn not_builtin(c: &ClusterRef) -> Result<(), Refusal> {
    if c.builtin {
        Err(Refusal::bad_request(
            "The built-in default cluster is configured with `sluice serve` flags, not here.",
        ))
    } else {
        Ok(())
    }
}

/// Names a cluster may not take: the built-in cluster's, in any letter case (a second
/// "default" would be mistaken for it in the console, the API and the command line).
pub const RESERVED_CLUSTER_NAMES: &[&str] = &[DEFAULT_CLUSTER];

/// A cluster name: [`check_name`]'s rules, and none of [`RESERVED_CLUSTER_NAMES`].
pub fn check_cluster_name(name: &str) -> Result<(), Refusal> {
    check_name("cluster", name, 64)?;
    if let Some(reserved) = RESERVED_CLUSTER_NAMES
        .iter()
        .find(|r| r.eq_ignore_ascii_case(name.trim()))
    {
        return Err(Refusal::bad_request(format!(
            "'{reserved}' is the name of the built-in cluster and cannot be used for another. \
             Choose a different name, such as your team's or the environment's (e.g. 'prod')."
        )));
    }
    Ok(())
}

pub async fn create_cluster(
    console: &Console,
    viewer: &Viewer,
    name: &str,
) -> Result<ClusterRef, Refusal> {
    viewer.require_admin()?;
    let name = name.trim();
    check_cluster_name(name)?;
    let vc = console
        .view
        .create_virtual_cluster(&viewer.org.id, name)
        .await?;
    tracing::info!(org = %viewer.org.id, cluster = %vc.id, by = %viewer.user.email, "cluster created");
    Ok(ClusterRef::from_vc(vc))
}

pub async fn rename_cluster(
    console: &Console,
    viewer: &Viewer,
    c: &ClusterRef,
    name: &str,
) -> Result<(), Refusal> {
    viewer.require_admin()?;
    not_builtin(c)?;
    let name = name.trim();
    check_cluster_name(name)?;
    console.view.rename_virtual_cluster(&c.id, name).await?;
    Ok(())
}

pub async fn update_cluster_settings(
    console: &Console,
    viewer: &Viewer,
    c: &ClusterRef,
    auto_create: bool,
    partitions: i32,
    retention_ms: i64,
) -> Result<(), Refusal> {
    viewer.require_admin()?;
    not_builtin(c)?;
    if !(1..=1000).contains(&partitions) {
        return Err(Refusal::bad_request(
            "Default partitions must be between 1 and 1000.",
        ));
    }
    if retention_ms != -1 && retention_ms < 60_000 {
        return Err(Refusal::bad_request(
            "Default retention must be at least one minute (60000 ms), or -1 for unlimited.",
        ));
    }
    let settings = ClusterDefaults {
        auto_create_topics: auto_create,
        default_partitions: partitions,
        default_retention_ms: retention_ms,
    };
    console
        .view
        .update_cluster_settings(&c.id, settings)
        .await?;
    Ok(())
}

/// Deletes a cluster with everything in it, once `confirm` repeats its name.
pub async fn delete_cluster(
    console: &Console,
    viewer: &Viewer,
    c: &ClusterRef,
    confirm: &str,
) -> Result<(), Refusal> {
    viewer.require_admin()?;
    not_builtin(c)?;
    if confirm.trim() != c.name {
        return Err(Refusal::bad_request(format!(
            "Type the cluster's name, '{}', to confirm the deletion.",
            c.name
        )));
    }
    console.view.delete_virtual_cluster(&c.id).await?;
    tracing::info!(cluster = %c.id, by = %viewer.user.email, "cluster deleted");
    Ok(())
}

/// Topics and consumer groups with committed offsets in a cluster, for the overview.
pub async fn cluster_counts(console: &Console, c: &ClusterRef) -> Result<(usize, usize), Refusal> {
    let topics = console.view.topic_count(&c.id).await?;
    let groups = console.view.group_count(&c.id).await?;
    Ok((topics, groups))
}

// ---- API keys ----

/// A cluster's keys (none for the built-in cluster). Only owners and admins list keys
/// (who made which key, when it was last used): members, and API keys, may not.
pub async fn api_keys(
    console: &Console,
    viewer: &Viewer,
    c: &ClusterRef,
) -> Result<Vec<ApiKeyInfo>, Refusal> {
    if !viewer.role.can_admin() {
        return Err(Refusal::forbidden(
            "Only owners and admins of this organisation can see its API keys. Ask one of them.",
        ));
    }
    if c.builtin {
        return Ok(Vec::new());
    }
    Ok(console.view.api_keys(&c.id).await?)
}

pub async fn create_api_key(
    console: &Console,
    viewer: &Viewer,
    c: &ClusterRef,
    name: &str,
) -> Result<(ApiKeyInfo, String), Refusal> {
    viewer.require_admin()?;
    if c.builtin {
        return Err(Refusal::bad_request(
            "The built-in default cluster needs no API key; create a cluster to use keys.",
        ));
    }
    let name = name.trim();
    check_name("key", name, 64)?;
    let made = console
        .view
        .create_api_key(&c.id, name, &viewer.user.email)
        .await?;
    tracing::info!(cluster = %c.id, key = %made.0.id, by = %viewer.user.email, "api key created");
    Ok(made)
}

pub async fn revoke_api_key(
    console: &Console,
    viewer: &Viewer,
    c: &ClusterRef,
    key_id: &str,
) -> Result<(), Refusal> {
    viewer.require_admin()?;
    let keys = console.view.api_keys(&c.id).await?;
    if !keys.iter().any(|k| k.id == key_id) {
        return Err(Refusal::not_found(format!(
            "No API key '{key_id}' in this cluster."
        )));
    }
    if !console.view.revoke_api_key(key_id).await? {
        return Err(Refusal::conflict(format!(
            "API key '{key_id}' is already revoked."
        )));
    }
    tracing::info!(cluster = %c.id, key = %key_id, by = %viewer.user.email, "api key revoked");
    Ok(())
}

// ---- team ----

pub async fn members(console: &Console, viewer: &Viewer) -> Result<Vec<Member>, Refusal> {
    Ok(console.platform.org_members(&viewer.org.id).await?)
}

pub async fn invites(console: &Console, viewer: &Viewer) -> Result<Vec<Invite>, Refusal> {
    Ok(console.platform.open_invites(&viewer.org.id).await?)
}

/// Creates an invite; returns it with the token of its one-time link.
pub async fn invite(
    console: &Console,
    viewer: &Viewer,
    role: &str,
    note: &str,
) -> Result<(Invite, String), Refusal> {
    viewer.require_admin()?;
    let role = Role::parse(role)
        .ok_or_else(|| Refusal::bad_request("Role must be owner, admin or member."))?;
    if role == Role::Owner && viewer.role != Role::Owner {
        return Err(Refusal::forbidden("Only owners can invite owners."));
    }
    let note = note.trim();
    if note.chars().count() > 200 {
        return Err(Refusal::bad_request("Keep the note under 200 characters."));
    }
    let token = auth::new_invite_token();
    let expires = broker::clock::now_ms() + console.settings.invite_ttl.as_millis() as i64;
    let inv = console
        .platform
        .create_invite(
            &viewer.org.id,
            role.as_str(),
            note,
            &viewer.user.email,
            &auth::token_hash(&token),
            expires,
        )
        .await?;
    Ok((inv, token))
}

pub async fn revoke_invite(console: &Console, viewer: &Viewer, id: &str) -> Result<(), Refusal> {
    viewer.require_admin()?;
    if console.platform.revoke_invite(&viewer.org.id, id).await? {
        Ok(())
    } else {
        Err(Refusal::not_found("No open invite with that id."))
    }
}

/// Changes a member's role, or removes them (`role` None).
pub async fn change_member(
    console: &Console,
    viewer: &Viewer,
    user_id: &str,
    role: Option<&str>,
) -> Result<(), Refusal> {
    let members = console.platform.org_members(&viewer.org.id).await?;
    let target = members
        .iter()
        .find(|m| m.user_id == user_id)
        .ok_or_else(|| Refusal::not_found("That user is not a member of this organisation."))?;
    let target_role = Role::parse(&target.role).unwrap_or(Role::Member);
    let new_role = match role {
        Some(r) => Some(
            Role::parse(r)
                .ok_or_else(|| Refusal::bad_request("Role must be owner, admin or member."))?,
        ),
        None => None,
    };
    let leaving = user_id == viewer.user.id && new_role.is_none();
    // Anyone may leave; everything else needs an admin, and owners are managed by owners.
    if !leaving {
        viewer.require_admin()?;
        if (target_role == Role::Owner || new_role == Some(Role::Owner))
            && viewer.role != Role::Owner
        {
            return Err(Refusal::forbidden(
                "Only owners can change an owner's role or make someone an owner.",
            ));
        }
    }
    match console
        .platform
        .change_member(&viewer.org.id, user_id, new_role.map(Role::as_str))
        .await?
    {
        MemberChange::Done => Ok(()),
        MemberChange::NotMember => Err(Refusal::not_found(
            "That user is not a member of this organisation.",
        )),
        MemberChange::LastOwner => Err(Refusal::conflict(
            "An organisation needs at least one owner: make someone else an owner first.",
        )),
    }
}

// ---- cluster data: topics, messages, consumer groups ----

use broker::inspect::{
    GroupDetail, GroupLag, GroupSummary, OffsetReset, ReadFrom, RecordView, TopicDetail,
    TopicSummary,
};

pub async fn topics(console: &Console, c: &ClusterRef) -> Result<Vec<TopicSummary>, Refusal> {
    Ok(console.view.topic_summaries(&c.id).await?)
}

pub async fn topic(console: &Console, c: &ClusterRef, name: &str) -> Result<TopicDetail, Refusal> {
    Ok(console.view.topic_detail(&c.id, name).await?)
}

/// Parses `key=value` lines (blank lines and `#` comments ignored).
pub fn parse_config_lines(text: &str) -> Result<Vec<(String, String)>, Refusal> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let Some((k, v)) = line.split_once('=') else {
            return Err(Refusal::bad_request(format!(
                "'{line}' is not a config: write one key=value per line, e.g. retention.ms=86400000"
            )));
        };
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

pub async fn create_topic(
    console: &Console,
    actor: &Actor,
    c: &ClusterRef,
    name: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> Result<(), Refusal> {
    require_write(actor)?;
    let name = name.trim();
    check_new_topic(name, partitions)?;
    console
        .view
        .create_topic(&c.id, name, partitions, configs)
        .await
        .map_err(|e| match e {
            broker::inspect::InspectError::Conflict(_) => Refusal::conflict(format!(
                "A topic named '{name}' already exists in this cluster. Choose another name, \
                 or open the existing topic."
            )),
            // Config refusals come worded for Kafka clients ("invalid value 'x' for
            // 'retention.ms': expected ..."): kept, as a sentence.
            other => as_sentence(other.into()),
        })?;
    Ok(())
}

/// The rules for a new topic's name and partition count, worded for the person who typed
/// them. Whether a name is valid is the broker's decision (the rules CreateTopics applies);
/// only the wording is the console's.
pub fn check_new_topic(name: &str, partitions: i32) -> Result<(), Refusal> {
    use broker::inspect::{validate_new_topic_name, MAX_PARTITIONS};
    if let Err(broker_says) = validate_new_topic_name(name) {
        const RULES: &str = "letters, digits, '.', '_' and '-', up to 249 characters";
        let bad = |c: &char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        let text = if name.is_empty() {
            format!("Give the topic a name: {RULES}.")
        } else if name == "." || name == ".." {
            format!("'{name}' cannot be a topic name. Use {RULES}.")
        } else if let Some(c) = name.chars().find(bad) {
            let what = match c {
                ' ' => "a space".to_string(),
                c if c.is_control() => "a control character".to_string(),
                c => format!("'{c}'"),
            };
            format!("'{name}' contains {what}: a topic name has only {RULES}.")
        } else if name.len() > 249 {
            format!(
                "A topic name has at most 249 characters; this one has {}.",
                name.len()
            )
        } else {
            as_sentence(Refusal::bad_request(broker_says)).message
        };
        return Err(Refusal::bad_request(text));
    }
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err(Refusal::bad_request(format!(
            "Partitions must be between 1 and {MAX_PARTITIONS} (you gave {partitions})."
        )));
    }
    Ok(())
}

/// A refusal whose message starts with a capital letter and ends with a full stop (the
/// broker words some of its messages for Kafka clients, in lower case).
pub fn as_sentence(mut r: Refusal) -> Refusal {
    let m = r.message.trim();
    let mut out = String::with_capacity(m.len() + 1);
    let mut chars = m.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
    if !out.is_empty() && !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    r.message = out;
    r
}

/// Grows a topic to `count` partitions in all (as `kafka-topics --alter --partitions`).
pub async fn add_partitions(
    console: &Console,
    actor: &Actor,
    c: &ClusterRef,
    name: &str,
    count: i64,
) -> Result<(), Refusal> {
    require_write(actor)?;
    let max = broker::inspect::MAX_PARTITIONS;
    let count = i32::try_from(count).map_err(|_| {
        Refusal::bad_request(format!(
            "A topic can have at most {max} partitions (you asked for {count})."
        ))
    })?;
    console
        .view
        .add_partitions(&c.id, name, count)
        .await
        .map_err(|e| as_sentence(e.into()))?;
    Ok(())
}

/// The consumer groups reading a topic (committed offsets on it, or a live member
/// subscribed), with their offset lag on it.
pub async fn topic_groups(
    console: &Console,
    c: &ClusterRef,
    name: &str,
) -> Result<Vec<broker::inspect::TopicGroup>, Refusal> {
    Ok(console.view.topic_groups(&c.id, name).await?)
}

pub async fn alter_topic_configs(
    console: &Console,
    actor: &Actor,
    c: &ClusterRef,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<(), Refusal> {
    require_write(actor)?;
    console
        .view
        .alter_topic_configs(&c.id, name, set, delete)
        .await?;
    Ok(())
}

pub async fn delete_topic(
    console: &Console,
    actor: &Actor,
    c: &ClusterRef,
    name: &str,
) -> Result<(), Refusal> {
    require_write(actor)?;
    console.view.delete_topic(&c.id, name).await?;
    Ok(())
}

mod groups;
mod records;

pub use groups::*;
pub use records::*;
