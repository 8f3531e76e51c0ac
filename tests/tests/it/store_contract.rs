//! One contract, every adapter: the in-memory store, the DynamoDB adapter on
//! DynamoDB Local, and the DynamoDB adapter on moto's server (whose TTL never
//! fires, so only the read-side expiry check keeps expired items out).

use crate::support::{dynamo_client, fresh_table, test_sealer, Backend};
use miro_connect::clock::{Clock, SystemClock};
use miro_connect::domain::{
    AuthorizationRequest, BoardRequest, Completion, Connection, ConnectionKey, ConnectionProfile,
    PendingAuthorization,
};
use miro_connect::identity::AppUser;
use miro_connect::secret::Secret;
use miro_connect::store::dynamo::DynamoStore;
use miro_connect::store::keys::{KeyCount, Resealed, Sealed, SealedCount};
use miro_connect::store::memory::MemoryStore;
use miro_connect::store::{Store, StoreError, Taken};
use std::sync::Arc;

const TEAM: &str = "3458764517517818867";

fn now() -> i64 {
    SystemClock.now()
}

fn user(name: &str) -> AppUser {
    AppUser::parse(name).expect("user")
}

fn request(owner: &str) -> AuthorizationRequest {
    AuthorizationRequest {
        user: user(owner),
        flow_secret_hash: Secret::random().digest(),
        return_to: "https://app.example.test/done?x=1".into(),
        team_id: Some("3458764517517818867".into()),
        intent: Some(BoardRequest {
            name: Some("Plan".into()),
            ..Default::default()
        }),
        intent_key: Some("order-17".into()),
    }
}

fn pending(expires_at: i64) -> PendingAuthorization {
    PendingAuthorization {
        state_hash: Secret::random().digest(),
        request: request("alice"),
        expires_at,
    }
}

fn connection(owner: &str, refresh_expires_at: Option<i64>) -> Connection {
    Connection {
        key: ConnectionKey::new(&user(owner), TEAM),
        profile: ConnectionProfile {
            miro_user_id: Some("3458764517517819000".into()),
            team_name: Some("Team".into()),
            scopes: vec!["boards:write".into()],
            connected_at: now(),
        },
        access_token: Secret::random(),
        refresh_token: Some(Secret::random()),
        access_expires_at: Some(now() + 3600),
        refresh_expires_at,
        version: 7,
        lease_until: None,
        refresh_retry_at: None,
        sweep_at: now() + 86_400,
    }
}

pub async fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

pub async fn dynamo(backend: Backend) -> Arc<dyn Store> {
    let client = dynamo_client(backend).await;
    let table = fresh_table(&client).await;
    Arc::new(DynamoStore::new(client, table, test_sealer()))
}

async fn pending_is_taken_exactly_once(store: Arc<dyn Store>) {
    let p = pending(now() + 600);
    store.put_pending(&p).await.expect("put");
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let hash = p.state_hash.clone();
            tokio::spawn(async move { store.take_pending(&hash, now()).await })
        })
        .collect();
    let mut fresh = 0;
    for t in takers {
        match t.await.expect("join").expect("take") {
            Taken::Fresh(got) => {
                assert_eq!(got, p);
                fresh += 1;
            }
            Taken::Missing => {}
            Taken::Expired(_) => panic!("not expired"),
        }
    }
    assert_eq!(fresh, 1, "exactly one of the concurrent takers gets it");
    assert_eq!(
        store
            .take_pending(&p.state_hash, now())
            .await
            .expect("take"),
        Taken::Missing
    );
}

async fn expiry_is_checked_on_read(store: Arc<dyn Store>) {
    // Alive by the wall clock (no TTL can remove it), past its time for the reader.
    let p = pending(now() + 600);
    store.put_pending(&p).await.expect("put");
    assert!(matches!(
        store
            .take_pending(&p.state_hash, p.expires_at)
            .await
            .expect("take"),
        Taken::Expired(_)
    ));
    let c = connection("bob", Some(now() + 600));
    store.put_connection(&c).await.expect("put");
    assert!(store
        .get_connection(&c.key, now())
        .await
        .expect("get")
        .is_some());
    assert_eq!(
        store
            .get_connection(&c.key, now() + 600)
            .await
            .expect("get"),
        None
    );
}

async fn long_expired_items_stay_out(store: Arc<dyn Store>) {
    // An hour past: a store whose TTL never fires still holds it.
    let p = pending(now() - 3600);
    store.put_pending(&p).await.expect("put");
    assert!(!matches!(
        store
            .take_pending(&p.state_hash, now())
            .await
            .expect("take"),
        Taken::Fresh(_)
    ));
    let c = connection("carol", Some(now() - 3600));
    store.put_connection(&c).await.expect("put");
    assert_eq!(
        store.get_connection(&c.key, now()).await.expect("get"),
        None
    );
}

async fn completion_keeps_its_code_and_is_single_use(store: Arc<dyn Store>) {
    let c = Completion {
        completion_hash: Secret::random().digest(),
        code: Secret::new("code-abc"),
        code_verifier: Secret::random(),
        request: request("alice"),
        expires_at: now() + 600,
    };
    store.put_completion(&c).await.expect("put");
    assert_eq!(
        store
            .take_completion(&c.completion_hash, now())
            .await
            .expect("take"),
        Taken::Fresh(c.clone())
    );
    assert_eq!(
        store
            .take_completion(&c.completion_hash, now())
            .await
            .expect("take"),
        Taken::Missing
    );
    // A pending authorization is not a completion, whatever the hash.
    assert_eq!(
        store
            .take_pending(&c.completion_hash, now())
            .await
            .expect("take"),
        Taken::Missing
    );
}

async fn duplicate_ids_are_refused(store: Arc<dyn Store>) {
    let p = pending(now() + 600);
    store.put_pending(&p).await.expect("put");
    assert!(matches!(
        store.put_pending(&p).await,
        Err(StoreError::Conflict)
    ));
}

async fn connection_round_trips_and_deletes_idempotently(store: Arc<dyn Store>) {
    let c = connection("dave", Some(now() + 86_400));
    store.put_connection(&c).await.expect("put");
    assert_eq!(
        store.get_connection(&c.key, now()).await.expect("get"),
        Some(c.clone())
    );
    let mut replaced = c.clone();
    replaced.access_token = Secret::random();
    replaced.version += 1;
    store.put_connection(&replaced).await.expect("put");
    assert_eq!(
        store.get_connection(&c.key, now()).await.expect("get"),
        Some(replaced)
    );
    assert_eq!(
        store
            .get_connection(&ConnectionKey::new(&user("erin"), TEAM), now())
            .await
            .expect("get"),
        None
    );
    store.delete_connection(&c.key).await.expect("delete");
    store.delete_connection(&c.key).await.expect("delete again");
    assert_eq!(
        store.get_connection(&c.key, now()).await.expect("get"),
        None
    );

    let forever = Connection {
        refresh_token: None,
        refresh_expires_at: None,
        access_expires_at: None,
        ..connection("frank", None)
    };
    store.put_connection(&forever).await.expect("put");
    assert_eq!(
        store
            .get_connection(&forever.key, now() + 10 * 365 * 86_400)
            .await
            .expect("get"),
        Some(forever)
    );
}

async fn refresh_lease_is_exclusive_and_versioned(store: Arc<dyn Store>) {
    let c = connection("gus", Some(now() + 86_400));
    store.put_connection(&c).await.expect("put");
    let t = now();
    assert!(
        !store
            .try_lease(&c.key, c.version + 1, "a", t + 30, t)
            .await
            .expect("lease"),
        "wrong version"
    );
    assert!(store
        .try_lease(&c.key, c.version, "a", t + 30, t)
        .await
        .expect("lease"));
    assert!(
        !store
            .try_lease(&c.key, c.version, "b", t + 30, t)
            .await
            .expect("lease"),
        "held by a"
    );
    let held = store
        .get_connection(&c.key, t)
        .await
        .expect("get")
        .expect("there");
    assert_eq!(held.lease_until, Some(t + 30));
    // b cannot release a's lease; a can.
    store
        .release_lease(&c.key, "b", None)
        .await
        .expect("release");
    assert!(!store
        .try_lease(&c.key, c.version, "b", t + 30, t)
        .await
        .expect("lease"));
    store
        .release_lease(&c.key, "a", None)
        .await
        .expect("release");
    assert!(store
        .try_lease(&c.key, c.version, "b", t + 30, t)
        .await
        .expect("lease"));
    // A lease that ran out can be taken over.
    assert!(store
        .try_lease(&c.key, c.version, "c", t + 90, t + 31)
        .await
        .expect("lease"));

    let renewed = Connection {
        access_token: Secret::random(),
        version: c.version + 1,
        ..c.clone()
    };
    assert!(
        !store
            .replace_tokens(&renewed, c.version + 5, "h")
            .await
            .expect("replace"),
        "wrong version"
    );
    assert!(store
        .replace_tokens(&renewed, c.version, "h")
        .await
        .expect("replace"));
    let read = store
        .get_connection(&c.key, t)
        .await
        .expect("get")
        .expect("there");
    assert_eq!(read, renewed, "new tokens, new version, no lease");
    assert!(
        !store
            .delete_connection_at(&c.key, c.version)
            .await
            .expect("delete"),
        "old version"
    );
    assert!(store
        .get_connection(&c.key, t)
        .await
        .expect("get")
        .is_some());
    assert!(store
        .delete_connection_at(&c.key, renewed.version)
        .await
        .expect("delete"));
    assert!(store
        .get_connection(&c.key, t)
        .await
        .expect("get")
        .is_none());
    assert!(
        !store
            .try_lease(&c.key, renewed.version, "d", t + 30, t)
            .await
            .expect("lease"),
        "no item"
    );
}

async fn live_flows_are_bounded_until_they_expire(store: Arc<dyn Store>) {
    let u = user(&format!("flows-{}", Secret::random().digest()));
    let t = now();
    for i in 0..3 {
        assert_eq!(
            store
                .admit_flow(&u, t + 600 + i, t, 3)
                .await
                .expect("admit"),
            None,
            "flow {i}"
        );
    }
    assert_eq!(
        store
            .admit_flow(&u, t + 700, t + 10, 3)
            .await
            .expect("admit"),
        Some(t + 602),
        "full until the last counted flow expires"
    );
    assert_eq!(
        store
            .admit_flow(&u, t + 1300, t + 602, 3)
            .await
            .expect("admit"),
        None,
        "all expired: counting starts afresh"
    );
    assert_eq!(
        store
            .admit_flow(&user("someone-else"), t + 600, t, 3)
            .await
            .expect("admit"),
        None,
        "per user"
    );
}

async fn a_forgotten_connection_reads_as_gone_and_keeps_its_grant(store: Arc<dyn Store>) {
    let c = connection("frank", Some(now() + 86_400));
    assert_eq!(store.put_connection(&c).await.expect("put"), None);
    assert!(!store
        .forget_connection(&c.key, c.version + 1)
        .await
        .expect("forget"));
    assert!(store
        .forget_connection(&c.key, c.version)
        .await
        .expect("forget"));
    assert_eq!(
        store.get_connection(&c.key, now()).await.expect("get"),
        None
    );
    let forgotten = store
        .forgotten_connection(&c.key, now())
        .await
        .expect("read")
        .expect("kept for its revocation");
    assert_eq!(forgotten.access_token, c.access_token);
    assert!(forgotten.version > c.version, "its version moved on");
    assert!(
        !store
            .try_lease(&c.key, c.version, "late", now() + 30, now())
            .await
            .expect("lease"),
        "a refresher of the old version cannot lease it"
    );
    assert!(
        !store
            .replace_tokens(&c, c.version, "late")
            .await
            .expect("replace"),
        "nor write over it"
    );
    // A reconnect replaces it and hands back its grant to revoke.
    let mut again = connection("frank", Some(now() + 86_400));
    again.version = miro_connect::domain::first_version();
    let replaced = store.put_connection(&again).await.expect("put");
    assert_eq!(
        replaced.map(|r| r.access_token),
        Some(c.access_token.clone())
    );
    assert_eq!(
        store
            .forgotten_connection(&c.key, now())
            .await
            .expect("read"),
        None
    );
    assert!(store
        .delete_connection_at(&c.key, again.version)
        .await
        .expect("delete"));
}

/// The branches of the token protocol's conditions that only a retry or a
/// disconnect reaches (`miro_connect::token_protocol`; the DynamoDB
/// expressions name the predicate each implements): a lease sent again by
/// its holder (`lease_allowed`, held_by_caller), a token write sent again
/// after it landed (`tokens_write_allowed`, its second half), a connection
/// forgotten only once (`forget_allowed`) and deleted at its forgotten
/// version only (`delete_at_allowed`).
async fn retried_token_writes_count_once(store: Arc<dyn Store>) {
    let c = connection("hana", Some(now() + 86_400));
    store.put_connection(&c).await.expect("put");
    let t = now();
    assert!(store
        .try_lease(&c.key, c.version, "a", t + 30, t)
        .await
        .expect("lease"));
    assert!(
        store
            .try_lease(&c.key, c.version, "a", t + 30, t)
            .await
            .expect("lease"),
        "the same lease sent again is still a's"
    );
    assert!(
        !store
            .try_lease(&c.key, c.version, "b", t + 30, t)
            .await
            .expect("lease"),
        "and nobody else's"
    );
    let renewed = Connection {
        access_token: Secret::random(),
        version: c.version + 1,
        ..c.clone()
    };
    assert!(store
        .replace_tokens(&renewed, c.version, "a")
        .await
        .expect("replace"));
    assert!(
        store
            .replace_tokens(&renewed, c.version, "a")
            .await
            .expect("replace"),
        "the same write sent again after it landed: done, not moved on"
    );
    assert!(
        !store
            .replace_tokens(&renewed, c.version, "b")
            .await
            .expect("replace"),
        "another holder's write at that version: moved on"
    );
    assert_eq!(
        store.get_connection(&c.key, t).await.expect("get"),
        Some(renewed.clone())
    );

    assert!(store
        .forget_connection(&c.key, renewed.version)
        .await
        .expect("forget"));
    let forgotten = store
        .forgotten_connection(&c.key, t)
        .await
        .expect("read")
        .expect("kept for its revocation");
    assert!(
        !store
            .forget_connection(&c.key, forgotten.version)
            .await
            .expect("forget"),
        "forgotten once"
    );
    assert!(
        !store
            .try_lease(&c.key, renewed.version, "c", t + 30, t)
            .await
            .expect("lease"),
        "the version it was read at is gone"
    );
    assert!(!store
        .delete_connection_at(&c.key, renewed.version)
        .await
        .expect("delete"));
    assert!(store
        .delete_connection_at(&c.key, forgotten.version)
        .await
        .expect("delete"));
    assert_eq!(
        store.forgotten_connection(&c.key, t).await.expect("read"),
        None
    );
}

async fn idempotency_claims_settle_and_release(store: Arc<dyn Store>) {
    use miro_connect::store::{IdempotencyRecord, IdempotentOutcome};
    let u = user("idem");
    let key = Secret::random().digest();
    let t = now();
    let claim = IdempotencyRecord {
        request_hash: "h1".into(),
        outcome: IdempotentOutcome::InProgress {
            claim: "c1".into(),
            made: None,
        },
        expires_at: t + 86_400,
    };
    assert_eq!(store.claim(&u, &key, &claim, t).await.expect("claim"), None);
    assert_eq!(
        store.claim(&u, &key, &claim, t).await.expect("claim"),
        Some(claim.clone()),
        "taken: the first claim comes back, with its claim id"
    );
    let done = IdempotencyRecord {
        outcome: IdempotentOutcome::Unknown,
        ..claim.clone()
    };
    store.settle(&u, &key, &done).await.expect("settle");
    assert_eq!(
        store.claim(&u, &key, &claim, t).await.expect("claim"),
        Some(done)
    );
    store.release(&u, &key).await.expect("release");
    assert_eq!(store.claim(&u, &key, &claim, t).await.expect("claim"), None);
    assert_eq!(
        store
            .claim(&u, &key, &claim, t + 86_400)
            .await
            .expect("claim"),
        None,
        "an expired record is free again, whenever TTL runs"
    );
}

async fn connections_are_per_team_and_listed_in_one_read(store: Arc<dyn Store>) {
    let t = now();
    let mine = |team: &str, at: i64| Connection {
        key: ConnectionKey::new(&user("kai"), team),
        profile: ConnectionProfile {
            connected_at: at,
            ..connection("kai", None).profile
        },
        ..connection("kai", Some(t + 86_400))
    };
    let (first, second) = (mine("2", t - 10), mine("1", t));
    let theirs = connection("lou", Some(t + 86_400));
    for c in [&second, &first, &theirs] {
        assert_eq!(store.put_connection(c).await.expect("put"), None);
    }
    let list = store.list_connections(&user("kai"), t).await.expect("list");
    assert_eq!(
        list.live,
        vec![first.clone(), second.clone()],
        "each team its own connection, oldest first, nobody else's"
    );
    assert_eq!(list.default_team, None);

    assert!(store
        .set_default_team(&user("kai"), Some("2"), true)
        .await
        .expect("default"));
    assert!(
        !store
            .set_default_team(&user("kai"), Some("1"), true)
            .await
            .expect("default"),
        "only where none is set yet"
    );
    assert!(store
        .set_default_team(&user("kai"), Some("1"), false)
        .await
        .expect("default"));
    assert!(store
        .forget_connection(&first.key, first.version)
        .await
        .expect("forget"));
    let list = store.list_connections(&user("kai"), t).await.expect("list");
    assert_eq!(list.default_team.as_deref(), Some("1"));
    assert_eq!(list.live, vec![second.clone()]);
    assert_eq!(list.forgotten.len(), 1);
    assert_eq!(list.forgotten[0].key, first.key);
    assert_eq!(
        store.get_connection(&second.key, t).await.expect("get"),
        Some(second.clone()),
        "forgetting one team leaves the other"
    );
    let lapsed = store
        .list_connections(&user("kai"), t + 86_400)
        .await
        .expect("list");
    assert!(lapsed.live.is_empty() && lapsed.forgotten.is_empty());
    store
        .set_default_team(&user("kai"), None, false)
        .await
        .expect("default");
    let list = store.list_connections(&user("kai"), t).await.expect("list");
    assert_eq!(list.default_team, None);
    assert_eq!(
        store
            .list_connections(&user("lou"), t)
            .await
            .expect("list")
            .live,
        vec![theirs]
    );
}

async fn due_connections_come_by_their_sweep_time_and_move_on(store: Arc<dyn Store>) {
    let t = now();
    let at = |owner: &str, sweep_at: i64| Connection {
        sweep_at,
        ..connection(owner, Some(t + 50 * 86_400))
    };
    let (late, due, later) = (
        at("due-1", t - 3 * 86_400),
        at("due-2", t - 5),
        at("due-3", t + 60),
    );
    for c in [&late, &due, &later] {
        store.put_connection(c).await.expect("put");
    }
    let mine = |list: Vec<miro_connect::store::Due>| -> Vec<(String, i64)> {
        list.into_iter()
            .filter(|d| d.key.user.as_str().starts_with("due-"))
            .map(|d| (d.key.user.to_string(), d.sweep_at))
            .collect()
    };
    let found = mine(store.due_connections(t, 100).await.expect("due"));
    assert_eq!(
        found,
        vec![
            ("due-1".to_string(), late.sweep_at),
            ("due-2".to_string(), due.sweep_at)
        ],
        "the due ones, oldest first; not the one due later"
    );
    let listed = store.due_connections(t, 100).await.expect("due");
    let first = listed.iter().find(|d| d.key == late.key).expect("listed");
    assert_eq!(first.version, late.version);
    assert_eq!(first.refresh_expires_at, late.refresh_expires_at);

    assert!(
        !store
            .reschedule_sweep(&late.key, late.version + 1, t + 7 * 86_400)
            .await
            .expect("reschedule"),
        "only at its version"
    );
    assert!(store
        .reschedule_sweep(&late.key, late.version, t + 7 * 86_400)
        .await
        .expect("reschedule"));
    assert_eq!(
        mine(store.due_connections(t, 100).await.expect("due")),
        vec![("due-2".to_string(), due.sweep_at)]
    );
    assert_eq!(
        store
            .get_connection(&late.key, t)
            .await
            .expect("get")
            .map(|c| c.sweep_at),
        Some(t + 7 * 86_400)
    );
}

async fn a_retired_connection_reads_as_gone_is_kept_and_comes_back(store: Arc<dyn Store>) {
    let t = now();
    let c = Connection {
        sweep_at: t - 10,
        ..connection("retiring", Some(t + 50 * 86_400))
    };
    store.put_connection(&c).await.expect("put");
    let keep = t + 14 * 86_400;
    assert!(
        !store
            .retire_connection_at(&c.key, c.version + 1, "grant_rejected", t, keep)
            .await
            .expect("retire"),
        "only at its version"
    );
    assert!(store
        .retire_connection_at(&c.key, c.version, "grant_rejected", t, keep)
        .await
        .expect("retire"));
    assert_eq!(store.get_connection(&c.key, t).await.expect("get"), None);
    let list = store.list_connections(&c.key.user, t).await.expect("list");
    assert!(list.live.is_empty() && list.forgotten.is_empty());
    assert_eq!(list.retired_teams, vec![TEAM.to_string()]);
    assert!(
        !store
            .due_connections(t, 100)
            .await
            .expect("due")
            .iter()
            .any(|d| d.key == c.key),
        "off the sweep"
    );
    let retired = store
        .retired_connection(&c.key, t)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(retired.reason, "grant_rejected");
    assert_eq!(retired.retired_at, t);
    assert_eq!(retired.connection.version, c.version + 1);
    assert_eq!(retired.connection.refresh_token, c.refresh_token);
    assert_eq!(retired.connection.refresh_expires_at, c.refresh_expires_at);
    assert!(store
        .retired_connections(t)
        .await
        .expect("all")
        .iter()
        .any(|r| r.connection.key == c.key));
    assert_eq!(
        store.retired_connection(&c.key, keep).await.expect("read"),
        None,
        "kept only so long"
    );

    let back = Connection {
        version: c.version + 2,
        ..c.clone()
    };
    assert!(!store
        .reinstate_connection(&back, c.version)
        .await
        .expect("reinstate"));
    assert!(store
        .reinstate_connection(&back, c.version + 1)
        .await
        .expect("reinstate"));
    let live = store
        .get_connection(&c.key, t)
        .await
        .expect("get")
        .expect("live");
    assert_eq!(live.version, back.version);
    assert!(
        !store
            .reinstate_connection(&back, c.version + 1)
            .await
            .expect("reinstate"),
        "a live connection is not retired"
    );

    // The cooldown a transient failure leaves, seen by every reader.
    assert!(store
        .try_lease(&c.key, back.version, "h", t + 30, t)
        .await
        .expect("lease"));
    store
        .release_lease(&c.key, "h", Some(t + 30))
        .await
        .expect("release");
    let cooling = store
        .get_connection(&c.key, t)
        .await
        .expect("get")
        .expect("live");
    assert_eq!(cooling.refresh_retry_at, Some(t + 30));
    assert_eq!(cooling.lease_until, None);

    assert!(
        !store.erase_retired(&c.key).await.expect("erase"),
        "not retired"
    );
    assert!(store
        .retire_connection_at(&c.key, back.version, "revoked_at_miro", t, keep)
        .await
        .expect("retire"));
    assert!(store.erase_retired(&c.key).await.expect("erase"));
    assert_eq!(
        store.retired_connection(&c.key, t).await.expect("read"),
        None
    );
}

async fn the_breaker_counts_distinct_rejections_opens_and_clears(store: Arc<dyn Store>) {
    let t = now();
    assert!(store.breaker().await.expect("read").is_clear());
    store.breaker_rejected("a\n1", t).await.expect("reject");
    let state = store.breaker_rejected("b\n1", t + 1).await.expect("reject");
    assert_eq!(state.rejected_since(t).count(), 2);
    let state = store.breaker_rejected("a\n1", t + 2).await.expect("reject");
    assert_eq!(state.rejections.len(), 2, "distinct connections");
    assert_eq!(
        state.rejected_since(t + 2).collect::<Vec<_>>(),
        vec!["a\n1"]
    );
    assert!(!state.is_open(t + 2));
    store.breaker_open(t + 3, t + 63).await.expect("open");
    let state = store.breaker().await.expect("read");
    assert!(state.is_open(t + 4) && !state.is_open(t + 63));
    assert_eq!(state.opened_at, Some(t + 3));
    assert_eq!(state.rejections.len(), 2);
    store.breaker_clear().await.expect("clear");
    assert!(store.breaker().await.expect("read").is_clear());
}

// ---- Sealing keys: the same table through a deployment's successive rings ----

/// One table (or one memory store) as deployments with different key rings
/// see it: `ring(&["k2", "k1"])` seals under k2 and opens k2 and k1.
pub struct Rings {
    make: Box<StoreWithRing>,
}

/// The store as a deployment with these key ids (the sealing one first) has it.
type StoreWithRing = dyn Fn(&[&str]) -> Arc<dyn Store> + Send + Sync;

impl Rings {
    pub fn ring(&self, ids: &[&str]) -> Arc<dyn Store> {
        (self.make)(ids)
    }
}

pub async fn memory_rings() -> Rings {
    let store = Arc::new(MemoryStore::new());
    Rings {
        make: Box::new(move |ids| {
            store.set_key_ids(ids);
            store.clone() as Arc<dyn Store>
        }),
    }
}

/// Each key id gets one key for the table's life, whatever ring names it.
pub async fn dynamo_rings(backend: Backend) -> Rings {
    use miro_connect::seal::Sealer;
    let client = dynamo_client(backend).await;
    let table = fresh_table(&client).await;
    let keys = std::sync::Mutex::new(std::collections::HashMap::<String, Secret>::new());
    Rings {
        make: Box::new(move |ids| {
            let mut keys = keys.lock().expect("lock");
            let ring: Vec<String> = ids
                .iter()
                .map(|id| {
                    keys.entry(id.to_string())
                        .or_insert_with(|| Sealer::generate_key_ring_entry(id))
                        .expose()
                        .to_string()
                })
                .collect();
            let sealer = crate::support::sealer(&Secret::new(ring.join(",")));
            Arc::new(DynamoStore::new(client.clone(), table.clone(), sealer)) as Arc<dyn Store>
        }),
    }
}

fn sealed_keys(found: &[Sealed]) -> std::collections::BTreeSet<String> {
    found.iter().map(|s| s.key.user.to_string()).collect()
}

fn names(users: &[&str]) -> std::collections::BTreeSet<String> {
    users.iter().map(|u| u.to_string()).collect()
}

async fn connections_are_found_under_the_key_that_sealed_them_and_resealed_in_place(rings: Rings) {
    let a = rings.ring(&["k1"]);
    assert_eq!(a.key_ids(), ["k1"]);
    let (c1, c2) = (
        connection("seal-1", Some(now() + 86_400)),
        connection("seal-2", Some(now() + 86_400)),
    );
    for c in [&c1, &c2] {
        a.put_connection(c).await.expect("put");
    }
    let under_k1 = a.sealed_under("k1", None, 10).await.expect("sealed");
    assert_eq!(sealed_keys(&under_k1), names(&["seal-1", "seal-2"]));
    assert!(under_k1.iter().all(|s| s.version == c1.version));
    assert_eq!(
        a.count_sealed_under("k1", 100).await.expect("count"),
        SealedCount {
            sealed: 2,
            at_least: false
        }
    );
    assert_eq!(
        a.count_sealed_under("k1", 1).await.expect("count"),
        SealedCount {
            sealed: 1,
            at_least: true
        },
        "counting stops at its bound"
    );

    // A new key first: new writes are sealed under it, the old ones stay.
    let b = rings.ring(&["k2", "k1"]);
    let c3 = connection("seal-3", Some(now() + 86_400));
    b.put_connection(&c3).await.expect("put");
    assert_eq!(
        sealed_keys(&b.sealed_under("k2", None, 10).await.expect("sealed")),
        names(&["seal-3"])
    );
    let first = b.sealed_under("k1", None, 1).await.expect("sealed");
    assert_eq!(first.len(), 1, "a page of one");
    let rest = b
        .sealed_under("k1", Some(&first[0].key), 10)
        .await
        .expect("sealed");
    assert_eq!(
        sealed_keys(&[first, rest].concat()),
        names(&["seal-1", "seal-2"]),
        "the next page goes on after the last one"
    );

    assert_eq!(
        b.reseal_connection(&c1.key, c1.version)
            .await
            .expect("reseal"),
        Resealed::Done
    );
    assert_eq!(
        b.reseal_connection(&c1.key, c1.version)
            .await
            .expect("reseal"),
        Resealed::Current
    );
    assert_eq!(
        b.get_connection(&c1.key, now()).await.expect("get"),
        Some(c1.clone()),
        "the same tokens, the same version"
    );
    assert_eq!(
        sealed_keys(&b.sealed_under("k1", None, 10).await.expect("sealed")),
        names(&["seal-2"])
    );
    assert_eq!(
        b.count_sealed_under("k2", 100).await.expect("count").sealed,
        2
    );

    // Without k1: what was re-sealed opens, what was not is left alone.
    let only_k2 = rings.ring(&["k2"]);
    assert_eq!(
        only_k2.get_connection(&c1.key, now()).await.expect("get"),
        Some(c1.clone())
    );
    assert_eq!(
        only_k2
            .reseal_connection(&c2.key, c2.version)
            .await
            .expect("reseal"),
        Resealed::Unopenable
    );
    assert_eq!(
        only_k2
            .reseal_connection(&ConnectionKey::new(&user("seal-none"), TEAM), 1)
            .await
            .expect("reseal"),
        Resealed::Gone
    );
    assert_eq!(
        only_k2
            .count_sealed_under("k1", 100)
            .await
            .expect("count")
            .sealed,
        1,
        "still counted under k1"
    );
}

/// A re-seal is written at the version it read, and moves neither the
/// version nor the lease: a refresher holding the lease still writes, and a
/// refresh that landed first is never written over.
async fn a_reseal_never_undoes_a_refresh_nor_spoils_its_lease(rings: Rings) {
    let old = rings.ring(&["k1"]);
    let (c, d) = (
        connection("lease-1", Some(now() + 86_400)),
        connection("lease-2", Some(now() + 86_400)),
    );
    for x in [&c, &d] {
        old.put_connection(x).await.expect("put");
    }
    let new = rings.ring(&["k2", "k1"]);
    let t = now();

    // Leased, then re-sealed: the refresher's lease and write stand.
    assert!(new
        .try_lease(&c.key, c.version, "r", t + 30, t)
        .await
        .expect("lease"));
    assert_eq!(
        new.reseal_connection(&c.key, c.version)
            .await
            .expect("reseal"),
        Resealed::Done
    );
    let held = new
        .get_connection(&c.key, t)
        .await
        .expect("get")
        .expect("there");
    assert_eq!(
        (held.version, held.lease_until, &held.access_token),
        (c.version, Some(t + 30), &c.access_token)
    );
    assert!(
        !new.try_lease(&c.key, c.version, "other", t + 30, t)
            .await
            .expect("lease"),
        "still r's lease"
    );
    let renewed = Connection {
        access_token: Secret::random(),
        version: c.version + 1,
        ..c.clone()
    };
    assert!(
        new.replace_tokens(&renewed, c.version, "r")
            .await
            .expect("replace"),
        "the refresher writes over the re-seal"
    );
    assert_eq!(
        new.get_connection(&c.key, t).await.expect("get"),
        Some(renewed)
    );

    // Found under k1, then refreshed before the re-seal: nothing written.
    let found = new.sealed_under("k1", None, 10).await.expect("sealed");
    let entry = found.iter().find(|s| s.key == d.key).expect("d under k1");
    assert!(new
        .try_lease(&d.key, d.version, "s", t + 30, t)
        .await
        .expect("lease"));
    let refreshed = Connection {
        access_token: Secret::random(),
        refresh_token: Some(Secret::random()),
        version: d.version + 1,
        ..d.clone()
    };
    assert!(new
        .replace_tokens(&refreshed, d.version, "s")
        .await
        .expect("replace"));
    assert_eq!(
        new.reseal_connection(&entry.key, entry.version)
            .await
            .expect("reseal"),
        Resealed::MovedOn
    );
    assert_eq!(
        new.get_connection(&d.key, t).await.expect("get"),
        Some(refreshed),
        "the refresh's tokens, not the old ones"
    );
    assert!(
        new.sealed_under("k1", None, 10)
            .await
            .expect("sealed")
            .is_empty(),
        "the refresh sealed it under the new key"
    );
}

async fn the_key_summary_keeps_every_key_it_was_told_of(rings: Rings) {
    use std::collections::BTreeMap;
    let store = rings.ring(&["k1"]);
    assert!(store.key_summary().await.expect("summary").keys.is_empty());
    store.register_key("k1", 100).await.expect("register");
    let counted = |sealed, at_least, at| KeyCount {
        count: Some(SealedCount { sealed, at_least }),
        at,
    };
    assert_eq!(
        store.key_summary().await.expect("summary").keys,
        BTreeMap::from([(
            "k1".to_string(),
            KeyCount {
                count: None,
                at: 100
            }
        )]),
        "registered, not counted"
    );
    store
        .record_key_counts(
            &BTreeMap::from([
                (
                    "k1".to_string(),
                    SealedCount {
                        sealed: 3,
                        at_least: false,
                    },
                ),
                (
                    "k2".to_string(),
                    SealedCount {
                        sealed: 0,
                        at_least: false,
                    },
                ),
            ]),
            200,
        )
        .await
        .expect("record");
    store.register_key("k1", 300).await.expect("register");
    store
        .record_key_counts(
            &BTreeMap::from([(
                "k2".to_string(),
                SealedCount {
                    sealed: 5,
                    at_least: true,
                },
            )]),
            400,
        )
        .await
        .expect("record");
    assert_eq!(
        store.key_summary().await.expect("summary").keys,
        BTreeMap::from([
            ("k1".to_string(), counted(3, false, 200)),
            ("k2".to_string(), counted(5, true, 400)),
        ]),
        "a registration keeps the count; a key not named keeps its own"
    );
}

macro_rules! keys_contract {
    ($adapter:ident, $make:expr) => {
        mod $adapter {
            use super::*;

            #[tokio::test]
            async fn connections_are_found_under_the_key_that_sealed_them_and_resealed_in_place() {
                super::connections_are_found_under_the_key_that_sealed_them_and_resealed_in_place(
                    $make.await,
                )
                .await
            }
            #[tokio::test]
            async fn a_reseal_never_undoes_a_refresh_nor_spoils_its_lease() {
                super::a_reseal_never_undoes_a_refresh_nor_spoils_its_lease($make.await).await
            }
            #[tokio::test]
            async fn the_key_summary_keeps_every_key_it_was_told_of() {
                super::the_key_summary_keeps_every_key_it_was_told_of($make.await).await
            }
        }
    };
}

keys_contract!(keys_memory_store, memory_rings());
keys_contract!(keys_dynamodb_local, dynamo_rings(Backend::DynamoDbLocal));
keys_contract!(keys_moto, dynamo_rings(Backend::Moto));

macro_rules! contract {
    ($adapter:ident, $make:expr) => {
        mod $adapter {
            use super::*;

            #[tokio::test]
            async fn pending_is_taken_exactly_once() {
                super::pending_is_taken_exactly_once($make.await).await
            }
            #[tokio::test]
            async fn expiry_is_checked_on_read() {
                super::expiry_is_checked_on_read($make.await).await
            }
            #[tokio::test]
            async fn long_expired_items_stay_out() {
                super::long_expired_items_stay_out($make.await).await
            }
            #[tokio::test]
            async fn completion_keeps_its_code_and_is_single_use() {
                super::completion_keeps_its_code_and_is_single_use($make.await).await
            }
            #[tokio::test]
            async fn duplicate_ids_are_refused() {
                super::duplicate_ids_are_refused($make.await).await
            }
            #[tokio::test]
            async fn refresh_lease_is_exclusive_and_versioned() {
                super::refresh_lease_is_exclusive_and_versioned($make.await).await
            }
            #[tokio::test]
            async fn live_flows_are_bounded_until_they_expire() {
                super::live_flows_are_bounded_until_they_expire($make.await).await
            }
            #[tokio::test]
            async fn a_forgotten_connection_reads_as_gone_and_keeps_its_grant() {
                super::a_forgotten_connection_reads_as_gone_and_keeps_its_grant($make.await).await
            }
            #[tokio::test]
            async fn retried_token_writes_count_once() {
                super::retried_token_writes_count_once($make.await).await
            }
            #[tokio::test]
            async fn idempotency_claims_settle_and_release() {
                super::idempotency_claims_settle_and_release($make.await).await
            }
            #[tokio::test]
            async fn due_connections_come_by_their_sweep_time_and_move_on() {
                super::due_connections_come_by_their_sweep_time_and_move_on($make.await).await
            }
            #[tokio::test]
            async fn connections_are_per_team_and_listed_in_one_read() {
                super::connections_are_per_team_and_listed_in_one_read($make.await).await
            }
            #[tokio::test]
            async fn a_retired_connection_reads_as_gone_is_kept_and_comes_back() {
                super::a_retired_connection_reads_as_gone_is_kept_and_comes_back($make.await).await
            }
            #[tokio::test]
            async fn the_breaker_counts_distinct_rejections_opens_and_clears() {
                super::the_breaker_counts_distinct_rejections_opens_and_clears($make.await).await
            }
            #[tokio::test]
            async fn connection_round_trips_and_deletes_idempotently() {
                super::connection_round_trips_and_deletes_idempotently($make.await).await
            }
        }
    };
}

contract!(memory_store, memory());
contract!(dynamodb_local, dynamo(Backend::DynamoDbLocal));
contract!(moto, dynamo(Backend::Moto));
