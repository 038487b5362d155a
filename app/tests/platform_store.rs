//! The platform store's conformance suite (the console's users, organisations,
//! memberships and invites), run on SQLite always and on Postgres when
//! `SLUICE_TEST_POSTGRES_URL` is set (CI sets it). Every test makes its own users and
//! organisations (random e-mail addresses) so runs can share one Postgres database.

use app::store::{InviteProblem, MemberChange, Platform, StoreError};

fn email() -> String {
    format!("u-{}@example.com", uuid::Uuid::new_v4().simple())
}

async fn accounts_and_invites(m: &Platform) {
    let owner_email = email();
    let (owner, org) = m
        .create_user_with_org(&owner_email, "phc-hash", "Acme")
        .await
        .unwrap();
    // The e-mail address is unique.
    assert!(matches!(
        m.create_user_with_org(&owner_email, "x", "Other").await,
        Err(StoreError::AlreadyExists(_))
    ));
    let (found, hash) = m.user_by_email(&owner_email).await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), hash.as_str()),
        (owner.id.as_str(), "phc-hash")
    );
    let orgs = m.memberships_of(&owner.id).await.unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(
        (orgs[0].0.id.as_str(), orgs[0].1.as_str()),
        (org.id.as_str(), "owner")
    );

    // An invite is used once; a failed sign-up through it creates nobody.
    let now = broker::clock::now_ms();
    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    m.create_invite(&org.id, "member", "", &owner_email, &token, now + 60_000)
        .await
        .unwrap();
    let (invite, org_name) = m.invite_by_token(&token).await.unwrap().unwrap();
    assert_eq!(
        (invite.role.as_str(), org_name.as_str()),
        ("member", "Acme")
    );
    let member_email = email();
    let (member, joined) = m
        .create_user_with_invite(&member_email, "h", &token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(joined, org.id);
    let again = email();
    assert_eq!(
        m.create_user_with_invite(&again, "h", &token)
            .await
            .unwrap()
            .unwrap_err(),
        InviteProblem::Used
    );
    assert!(
        m.user_by_email(&again).await.unwrap().is_none(),
        "nothing created"
    );
    assert_eq!(
        m.accept_invite(&token, &owner.id)
            .await
            .unwrap()
            .unwrap_err(),
        InviteProblem::Used
    );

    // Expired, revoked and unknown invites.
    let expired = format!("tok-{}", uuid::Uuid::new_v4().simple());
    m.create_invite(&org.id, "admin", "", &owner_email, &expired, now - 1)
        .await
        .unwrap();
    assert_eq!(
        m.accept_invite(&expired, &member.id)
            .await
            .unwrap()
            .unwrap_err(),
        InviteProblem::Expired
    );
    let revoked = format!("tok-{}", uuid::Uuid::new_v4().simple());
    let inv = m
        .create_invite(&org.id, "admin", "", &owner_email, &revoked, now + 60_000)
        .await
        .unwrap();
    assert_eq!(m.open_invites(&org.id).await.unwrap().len(), 1);
    assert!(m.revoke_invite(&org.id, &inv.id).await.unwrap());
    assert!(!m.revoke_invite(&org.id, &inv.id).await.unwrap());
    assert_eq!(
        m.accept_invite(&revoked, &member.id)
            .await
            .unwrap()
            .unwrap_err(),
        InviteProblem::Revoked
    );
    assert_eq!(
        m.accept_invite("nope", &member.id)
            .await
            .unwrap()
            .unwrap_err(),
        InviteProblem::Unknown
    );
    // Joining twice is refused and leaves the invite usable.
    let second = format!("tok-{}", uuid::Uuid::new_v4().simple());
    m.create_invite(&org.id, "admin", "", &owner_email, &second, now + 60_000)
        .await
        .unwrap();
    assert_eq!(
        m.accept_invite(&second, &member.id)
            .await
            .unwrap()
            .unwrap_err(),
        InviteProblem::AlreadyMember
    );
    assert_eq!(m.open_invites(&org.id).await.unwrap().len(), 1);

    // The last owner stays.
    assert_eq!(
        m.change_member(&org.id, &owner.id, Some("admin"))
            .await
            .unwrap(),
        MemberChange::LastOwner
    );
    assert_eq!(
        m.change_member(&org.id, &owner.id, None).await.unwrap(),
        MemberChange::LastOwner
    );
    assert_eq!(
        m.change_member(&org.id, &member.id, Some("owner"))
            .await
            .unwrap(),
        MemberChange::Done
    );
    assert_eq!(
        m.change_member(&org.id, &owner.id, None).await.unwrap(),
        MemberChange::Done
    );
    assert_eq!(
        m.change_member(&org.id, &owner.id, None).await.unwrap(),
        MemberChange::NotMember
    );
    let members = m.org_members(&org.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].email.as_str(), members[0].role.as_str()),
        (member_email.as_str(), "owner")
    );
}

/// The first organisation (owner of the built-in `default` cluster) is the oldest and
/// never changes when more are made.
async fn first_organisation(m: &Platform) {
    let (_, a) = m.create_user_with_org(&email(), "h", "A").await.unwrap();
    let first = m
        .first_org_id()
        .await
        .unwrap()
        .expect("an organisation exists");
    let fresh = m.orgs().await.unwrap().len() == 1;
    if fresh {
        assert_eq!(first, a.id, "on a fresh database the first one made");
    }
    // Organisations are ordered by creation time (ms): make the next one in a later ms.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let (_, b) = m.create_user_with_org(&email(), "h", "B").await.unwrap();
    assert_ne!(first, b.id, "a later organisation is never the first");
    assert_eq!(m.first_org_id().await.unwrap(), Some(first), "stable");
}

async fn sqlite() -> (Platform, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("platform.db").display());
    (Platform::connect(&url).await.unwrap(), dir)
}

/// The platform store on a database of its own next to `SLUICE_TEST_POSTGRES_URL`'s (its
/// name plus `_platform`, created when missing), as `--platform-database-url` allows: the
/// shared database of the cluster suite then never carries the console's migrations.
async fn postgres() -> Option<Platform> {
    use sqlx::{Connection, Executor};
    let base = std::env::var("SLUICE_TEST_POSTGRES_URL").ok()?;
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base.as_str(), String::new()),
    };
    let (server, name) = head
        .rsplit_once('/')
        .expect("SLUICE_TEST_POSTGRES_URL ends in /DATABASE");
    let own = format!("{name}_platform");
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .expect("SLUICE_TEST_POSTGRES_URL is reachable");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&own)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        // Tests running at once may race to create it: only its absence afterwards fails.
        let _ = admin
            .execute(format!("CREATE DATABASE \"{own}\"").as_str())
            .await;
    }
    Some(
        Platform::connect(&format!("{server}/{own}{query}"))
            .await
            .expect("the platform test database is reachable"),
    )
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (m, _dir) = super::sqlite().await;
                    super::$name(&m).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(m) = super::postgres().await else {
                        eprintln!("skipped: SLUICE_TEST_POSTGRES_URL is not set, the Postgres half of the platform store suite did not run");
                        return;
                    };
                    super::$name(&m).await;
                }
            )*
        }
    };
}

conformance!(accounts_and_invites, first_organisation);
