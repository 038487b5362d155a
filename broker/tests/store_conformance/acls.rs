//! ACLs, the `acls_enabled` setting and client quotas of a virtual cluster (migrations
//! 0011 and 0012), on both backends.

use broker::acl::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
};
use broker::store::{ClientQuota, Metadata};

fn binding(name: &str, pattern: PatternType, op: Operation, perm: Permission) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: name.to_string(),
        pattern_type: pattern,
        principal: "User:K1".to_string(),
        host: "*".to_string(),
        operation: op,
        permission: perm,
    }
}

pub async fn acls_stored_filtered_deleted(m: &Metadata) {
    let vc = m
        .create_virtual_cluster("org-acl", &format!("acl-{}", uuid::Uuid::new_v4().simple()))
        .await
        .unwrap();
    assert!(!vc.acls_enabled, "ACLs are off in a new cluster");
    assert!(!m.acls_enabled(&vc.id).await.unwrap());
    assert!(m.set_acls_enabled(&vc.id, true).await.unwrap());
    assert!(m.acls_enabled(&vc.id).await.unwrap());
    assert!(
        m.virtual_cluster(&vc.id)
            .await
            .unwrap()
            .unwrap()
            .acls_enabled
    );
    assert!(!m.acls_enabled("no-such-cluster").await.unwrap());

    let prefixed = binding(
        "orders.",
        PatternType::Prefixed,
        Operation::Write,
        Permission::Allow,
    );
    let literal = binding(
        "orders.eu",
        PatternType::Literal,
        Operation::Read,
        Permission::Deny,
    );
    assert!(m
        .create_acls(&vc.id, &[prefixed.clone(), literal.clone()])
        .await
        .unwrap());
    // The same binding again changes nothing.
    assert!(m
        .create_acls(&vc.id, std::slice::from_ref(&prefixed))
        .await
        .unwrap());
    let mut stored = m.acls(&vc.id).await.unwrap();
    stored.sort();
    let mut want = vec![prefixed.clone(), literal.clone()];
    want.sort();
    assert_eq!(stored, want);

    // Another cluster sees none of them.
    let other = m
        .create_virtual_cluster("org-acl", &format!("acl-{}", uuid::Uuid::new_v4().simple()))
        .await
        .unwrap();
    assert!(m.acls(&other.id).await.unwrap().is_empty());

    // MATCH on a topic name finds the prefix and the literal; deleting by an exact
    // pattern filter removes only that one.
    let matching = AclFilter {
        resource_name: Some("orders.eu".into()),
        pattern: PatternFilter::Match,
        ..AclFilter::any()
    };
    assert_eq!(stored.iter().filter(|b| matching.matches(b)).count(), 2);
    let only_prefixed = AclFilter {
        resource_name: Some("orders.".into()),
        pattern: PatternFilter::Exact(PatternType::Prefixed),
        ..AclFilter::any()
    };
    assert_eq!(
        m.delete_acls(&vc.id, &only_prefixed).await.unwrap(),
        vec![prefixed]
    );
    assert_eq!(m.acls(&vc.id).await.unwrap(), vec![literal]);

    // Deleting the cluster takes its ACLs and quotas with it.
    m.alter_client_quotas(
        &vc.id,
        &[("K1".into(), "producer_byte_rate".into(), Some(5.0))],
    )
    .await
    .unwrap();
    m.delete_virtual_cluster(&vc.id).await.unwrap();
    assert!(m.acls(&vc.id).await.unwrap().is_empty());
    assert!(m.client_quotas(&vc.id).await.unwrap().is_empty());
}

pub async fn client_quotas_set_replaced_removed(m: &Metadata) {
    let c = format!("c-{}", uuid::Uuid::new_v4().simple());
    m.alter_client_quotas(
        &c,
        &[
            ("K1".into(), "producer_byte_rate".into(), Some(1_000_000.0)),
            ("K1".into(), "consumer_byte_rate".into(), Some(2_000_000.0)),
            ("K2".into(), "producer_byte_rate".into(), Some(10.5)),
        ],
    )
    .await
    .unwrap();
    // Setting again replaces; None removes.
    m.alter_client_quotas(
        &c,
        &[
            ("K1".into(), "producer_byte_rate".into(), Some(3.0)),
            ("K1".into(), "consumer_byte_rate".into(), None),
        ],
    )
    .await
    .unwrap();
    let q = |user: &str, key: &str, value: f64| ClientQuota {
        user: user.into(),
        key: key.into(),
        value,
    };
    assert_eq!(
        m.client_quotas(&c).await.unwrap(),
        vec![
            q("K1", "producer_byte_rate", 3.0),
            q("K2", "producer_byte_rate", 10.5)
        ]
    );
    let other = format!("c-{}", uuid::Uuid::new_v4().simple());
    assert!(m.client_quotas(&other).await.unwrap().is_empty());
}
