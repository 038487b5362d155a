//! A cluster's Kafka ACLs (list, filter by key, add, delete, turn enforcement on or off)
//! and the quota form of each API key. Plain forms: everything works without JavaScript.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use broker::inspect::{AclBinding, Operation, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};
use leptos::prelude::*;
use tower_sessions::Session;

use super::clusters::{tabs, Cluster, Tab};
use super::layout::{csrf_field, page, Nav};
use super::{back_with, done, enc, html, Fields, Page, Posted, SignedIn};
use crate::acl_ops::{self, AclInput};
use crate::auth::take_flash;
use crate::error::Refusal;
use crate::extract::InCluster;
use crate::AppState;

const RESOURCE_TYPES: [&str; 4] = ["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID"];
const PATTERN_TYPES: [&str; 2] = ["LITERAL", "PREFIXED"];
const PERMISSIONS: [&str; 2] = ["ALLOW", "DENY"];

fn options(values: &[&'static str]) -> Vec<AnyView> {
    values
        .iter()
        .map(|v| view! { <option value=*v>{*v}</option> }.into_any())
        .collect()
}

fn input_of(f: &Fields) -> AclInput<'_> {
    AclInput {
        principal: f.get("principal"),
        resource_type: f.get("resource_type"),
        resource_name: f.get("resource_name"),
        pattern_type: f.get("pattern_type"),
        operation: f.get("operation"),
        permission: f.get("permission"),
        host: f.get("host"),
    }
}

fn hidden(name: &'static str, value: String) -> impl IntoView {
    view! { <input type="hidden" name=name value=value/> }
}

pub async fn show(
    State(c): State<AppState>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
    InCluster {
        who: SignedIn(viewer),
        cluster: cl,
    }: Cluster,
) -> Page {
    Page(
        async {
            if cl.builtin {
                return Err(Refusal::not_found(
                    "The built-in default cluster has no ACLs: it is open to every client.",
                ));
            }
            // ACLs name key ids: like the key list, for owners and admins only.
            viewer.require_admin()?;
            let here = format!("/clusters/{}/acls", enc(&cl.id));
            let principal = q.get("principal").map(|p| p.trim()).filter(|p| !p.is_empty());
            let acls = acl_ops::acls(&c, &cl, principal).await?;
            let admin = viewer.role.can_admin();
            let status = if cl.acls_enabled {
                "ACLs are enforced: a key may do only what an ACL below allows (managing ACLs needs ALTER on the cluster)."
            } else {
                "ACLs are not enforced: every key of this cluster may do everything. The ACLs below apply once enforcement is on."
            };
            let toggle = admin.then(|| {
                let action = format!("{here}/enforce");
                let (value, label) = if cl.acls_enabled {
                    ("off", "Stop enforcing ACLs")
                } else {
                    ("on", "Enforce ACLs")
                };
                view! {
                    <form method="post" action=action class="inline" id="acl-enforcement">
                        {csrf_field(&viewer.csrf)}
                        <input type="hidden" name="enabled" value=value/>
                        <button type="submit">{label}</button>
                    </form>
                }
            });
            let add = admin.then(|| {
                let action = here.clone();
                let ops: Vec<&'static str> = Operation::ALL_OPS.iter().map(|o| o.name()).collect();
                let principal = principal.unwrap_or("").to_string();
                view! {
                    <form method="post" action=action class="row" id="create-acl">
                        {csrf_field(&viewer.csrf)}
                        <label>"Principal"<input name="principal" required=true value=principal placeholder="User:KEYID or User:*"/></label>
                        <label>"Permission"<select name="permission">{options(&PERMISSIONS)}</select></label>
                        <label>"Operation"<select name="operation">{options(&ops)}</select></label>
                        <label>"Resource"<select name="resource_type">{options(&RESOURCE_TYPES)}</select></label>
                        <label>"Pattern"<select name="pattern_type">{options(&PATTERN_TYPES)}</select></label>
                        <label>"Name"<input name="resource_name" placeholder="orders. or * (empty for the cluster)"/></label>
                        <label>"Host"<input name="host" value="*"/></label>
                        <button type="submit">"Add ACL"</button>
                    </form>
                }
            });
            let rows = acls
                .iter()
                .map(|b| {
                    let delete = admin.then(|| delete_form(&here, &viewer.csrf, b));
                    let filter = format!("{here}?principal={}", enc(&b.principal));
                    view! {
                        <tr>
                            <td><a href=filter><code>{b.principal.clone()}</code></a></td>
                            <td>{b.permission.name()}</td>
                            <td>{b.operation.name()}</td>
                            <td>{b.resource_type.name()}</td>
                            <td>{b.pattern_type.name()}</td>
                            <td><code>{b.resource_name.clone()}</code></td>
                            <td><code>{b.host.clone()}</code></td>
                            <td>{delete}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let empty = acls.is_empty().then(|| view! { <p class="empty">"No ACLs match."</p> });
            let filtered = principal.map(|p| {
                let all = here.clone();
                view! { <p>"Showing the ACLs of "<code>{p.to_string()}</code>" · "<a href=all>"all ACLs"</a></p> }
            });
            let body = view! {
                {tabs(&cl, Tab::Acls, &viewer)}
                <section class="card">
                    <p id="acl-status">{status}</p>
                    {toggle}
                    <p class="hint">"Principals are User:<key id> (User:* for every key). READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS; a DENY wins over any ALLOW. The cluster resource is named kafka-cluster. Kafka admin clients manage the same ACLs (kafka-acls.sh, AdminClient)."</p>
                    {add}
                    {filtered}
                    {empty}
                    <table id="acls">
                        <thead><tr><th>"Principal"</th><th>"Permission"</th><th>"Operation"</th><th>"Resource"</th><th>"Pattern"</th><th>"Name"</th><th>"Host"</th><th></th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </section>
            }
            .into_any();
            let title = format!("ACLs of {}", cl.name);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
}

fn delete_form(here: &str, csrf: &str, b: &AclBinding) -> impl IntoView {
    let action = format!("{here}/delete");
    view! {
        <form method="post" action=action class="inline">
            {csrf_field(csrf)}
            {hidden("principal", b.principal.clone())}
            {hidden("permission", b.permission.name().to_string())}
            {hidden("operation", b.operation.name().to_string())}
            {hidden("resource_type", b.resource_type.name().to_string())}
            {hidden("pattern_type", b.pattern_type.name().to_string())}
            {hidden("resource_name", b.resource_name.clone())}
            {hidden("host", b.host.clone())}
            <button type="submit" class="small danger">"Delete"</button>
        </form>
    }
}

pub async fn create(
    State(c): State<AppState>,
    session: Session,
    Posted(
        InCluster {
            who: SignedIn(viewer),
            cluster,
        },
        f,
    ): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/acls", enc(&cluster.id));
            match acl_ops::create_acl(&c, &viewer, &cluster, &input_of(&f)).await {
                Ok(b) => {
                    let back = format!("{here}?principal={}", enc(&b.principal));
                    done(&session, &back, "ACL added.").await
                }
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

pub async fn delete(
    State(c): State<AppState>,
    session: Session,
    Posted(
        InCluster {
            who: SignedIn(viewer),
            cluster,
        },
        f,
    ): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/acls", enc(&cluster.id));
            match acl_ops::delete_acl(&c, &viewer, &cluster, &input_of(&f)).await {
                Ok(true) => done(&session, &here, "ACL deleted.").await,
                Ok(false) => done(&session, &here, "That ACL was already gone.").await,
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

pub async fn enforce(
    State(c): State<AppState>,
    session: Session,
    Posted(
        InCluster {
            who: SignedIn(viewer),
            cluster,
        },
        f,
    ): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/acls", enc(&cluster.id));
            let enabled = f.get("enabled") == "on";
            match acl_ops::set_acls_enabled(&c, &viewer, &cluster, enabled).await {
                Ok(()) if enabled => done(&session, &here, "ACLs are now enforced.").await,
                Ok(()) => done(&session, &here, "ACLs are no longer enforced.").await,
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

/// A key's rates from its quota form: empty removes the quota.
fn rate(f: &Fields, name: &str) -> Result<Option<f64>, Refusal> {
    match f.get(name).trim() {
        "" => Ok(None),
        v => v.parse::<f64>().map(Some).map_err(|_| {
            Refusal::bad_request(format!(
                "{name} must be a number of bytes per second (or empty for no limit)."
            ))
        }),
    }
}

pub async fn key_quotas(
    State(c): State<AppState>,
    session: Session,
    Path((_, key)): Path<(String, String)>,
    Posted(
        InCluster {
            who: SignedIn(viewer),
            cluster,
        },
        f,
    ): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/keys", enc(&cluster.id));
            let result = async {
                let produce = rate(&f, PRODUCER_BYTE_RATE)?;
                let consume = rate(&f, CONSUMER_BYTE_RATE)?;
                acl_ops::set_key_quotas(
                    &c,
                    &viewer,
                    &cluster,
                    &key,
                    &[(PRODUCER_BYTE_RATE, produce), (CONSUMER_BYTE_RATE, consume)],
                )
                .await
            }
            .await;
            match result {
                Ok(()) => done(&session, &here, format!("Quotas of {key} saved.")).await,
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}
