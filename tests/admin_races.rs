//! Concurrent admin writes on one key end as if they had run one after the
//! other: every pair of writes is raced many times against both stores, and
//! the outcome (what each call answered, both keys' final state, and what
//! Verify says) must equal one of the pair's two serial orders.

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use keyward::proto::timestamp::Timestamp;
use keyward::proto::v1 as pb;
use pbjson_types::FieldMask;
use tonic::Code;

use common::{TestApp, TestDb, client::Api};

const ROUNDS: usize = 30;
/// The whole matrix must finish within this; fewer rounds than
/// `MIN_ROUNDS` per pair in that time is a failure, not a pass.
const TIME_CAP: Duration = Duration::from_secs(150);
const MIN_ROUNDS: usize = 5;

const KEEP: &str = "a:read";
const CUT: &str = "a:write";
const DAY: i64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Rotate with an hour of grace: the old key keeps working meanwhile.
    Rotate,
    /// Rotate with no grace: the old key stops at once.
    RotateNow,
    /// UpdateKey cutting the scopes to `KEEP`.
    CutScopes,
    /// UpdateKey changing label, metadata and expiry.
    Relabel,
    Revoke,
}

const OPS: [Op; 5] = [
    Op::Rotate,
    Op::RotateNow,
    Op::CutScopes,
    Op::Relabel,
    Op::Revoke,
];

/// A key as the test sees it; `lifetime` is expiry minus creation, seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    scopes: Vec<String>,
    label: String,
    metadata: BTreeMap<String, String>,
    lifetime: Option<i64>,
    status: pb::KeyStatus,
}

/// Everything a race is judged on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    answers: [Result<(), Code>; 2],
    old: View,
    successor: Option<View>,
}

/// The serial semantics of each write, as the API documents them; `label`
/// is the key's label at Issue (Relabel sets `{label}-b`).
fn apply(op: Op, label: &str, old: &mut View, successor: &mut Option<View>) -> Result<(), Code> {
    use pb::KeyStatus::*;
    match op {
        Op::Rotate | Op::RotateNow => {
            if old.status != Active {
                return Err(Code::FailedPrecondition);
            }
            *successor = Some(old.clone());
            old.status = if op == Op::Rotate { Rotating } else { Revoked };
            Ok(())
        }
        Op::CutScopes | Op::Relabel => {
            if !matches!(old.status, Active | Expired) {
                return Err(Code::FailedPrecondition);
            }
            if op == Op::CutScopes {
                old.scopes = vec![KEEP.to_owned()];
            } else {
                old.label = format!("{label}-b");
                old.metadata = BTreeMap::from([("v".to_owned(), "1".to_owned())]);
                old.lifetime = Some(20 * DAY);
            }
            Ok(())
        }
        Op::Revoke => {
            old.status = Revoked;
            Ok(())
        }
    }
}

fn serial(first: (usize, Op), second: (usize, Op), start: &View) -> Outcome {
    let mut old = start.clone();
    let mut successor = None;
    let mut answers = [Ok(()), Ok(())];
    answers[first.0] = apply(first.1, &start.label, &mut old, &mut successor);
    answers[second.0] = apply(second.1, &start.label, &mut old, &mut successor);
    Outcome {
        answers,
        old,
        successor,
    }
}

fn seconds(ts: &Timestamp) -> i128 {
    i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos)
}

fn view(info: &pb::KeyInfo) -> View {
    let created = info.created_at.as_ref().unwrap();
    View {
        scopes: info.scopes.clone(),
        label: info.label.clone(),
        metadata: info.metadata.clone().into_iter().collect(),
        lifetime: info
            .expires_at
            .as_ref()
            .map(|e| ((seconds(e) - seconds(created)) / 1_000_000_000) as i64),
        status: pb::KeyStatus::try_from(info.status).unwrap(),
    }
}

/// Runs one write; a successful rotation also names the successor.
async fn run(
    op: Op,
    mut client: Api,
    id: &str,
    label: &str,
    created: &Timestamp,
) -> (Result<(), Code>, Option<(String, String)>) {
    let answer = match op {
        Op::Rotate | Op::RotateNow => {
            let request = pb::RotateRequest {
                key_id: id.to_owned(),
                grace_period: Some(pbjson_types::Duration {
                    seconds: if op == Op::Rotate { 3_600 } else { 0 },
                    nanos: 0,
                }),
            };
            match client.try_rotate(request).await {
                Ok(r) => {
                    return (Ok(()), Some((r.info.unwrap().id, r.key)));
                }
                Err(status) => Err(status.code()),
            }
        }
        Op::CutScopes | Op::Relabel => {
            let mut request = pb::UpdateKeyRequest {
                key_id: id.to_owned(),
                ..Default::default()
            };
            let paths: &[&str] = if op == Op::CutScopes {
                request.scopes = vec![KEEP.to_owned()];
                &["scopes"]
            } else {
                request.label = format!("{label}-b");
                request.metadata = [("v".to_owned(), "1".to_owned())].into();
                request.expires_at = Some(Timestamp {
                    seconds: created.seconds + 20 * DAY,
                    nanos: created.nanos,
                });
                &["label", "metadata", "expires_at"]
            };
            request.update_mask = Some(FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            });
            client
                .try_update(request)
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }
        Op::Revoke => {
            let request = pb::RevokeRequest {
                key_id: id.to_owned(),
                reason: "race".into(),
            };
            client
                .try_revoke(request)
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }
    };
    (answer, None)
}

async fn allows_cut_scope(client: &mut Api, key: &str) -> bool {
    client.verify(key, &[CUT]).await.allowed
}

/// What Verify must say for `CUT` on a key in state `view`.
fn should_allow(view: &View) -> bool {
    matches!(view.status, pb::KeyStatus::Active | pb::KeyStatus::Rotating)
        && view.scopes.iter().any(|s| s == CUT)
}

async fn race_once(client: &Api, pair: (Op, Op), label: String) -> Result<(), String> {
    let mut c = client.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let issue = pb::IssueRequest {
        project: "race".into(),
        label: label.clone(),
        scopes: vec![KEEP.into(), CUT.into()],
        metadata: [("v".to_owned(), "0".to_owned())].into(),
        expires_at: Some(Timestamp {
            seconds: now + 10 * DAY,
            nanos: 0,
        }),
        ..Default::default()
    };
    let issued = c.issue(issue).await;
    let info = issued.info.unwrap();
    let start = view(&info);
    let created = info.created_at.unwrap();
    let id = info.id;

    let (a, b) = tokio::join!(
        run(pair.0, client.clone(), &id, &label, &created),
        run(pair.1, client.clone(), &id, &label, &created),
    );
    let successors: Vec<_> = [&a.1, &b.1].into_iter().flatten().cloned().collect();
    if successors.len() > 1 {
        return Err(format!(
            "{pair:?}: both rotations succeeded: {successors:?}"
        ));
    }
    let old_info = c.get_id(&id).await;
    let successor = match successors.first() {
        Some((sid, _)) => Some(view(&c.get_id(sid).await)),
        None => None,
    };
    let seen = Outcome {
        answers: [a.0, b.0],
        old: view(&old_info),
        successor,
    };
    let orders = [
        serial((0, pair.0), (1, pair.1), &start),
        serial((1, pair.1), (0, pair.0), &start),
    ];
    let Some(order) = orders.iter().find(|o| **o == seen) else {
        return Err(format!(
            "{pair:?}: {seen:#?}\nis neither serial order:\n{:#?}\n{:#?}",
            orders[0], orders[1]
        ));
    };

    // Verify agrees with the state that serial order leaves.
    if allows_cut_scope(&mut c, &issued.key).await != should_allow(&order.old) {
        return Err(format!(
            "{pair:?}: Verify of the old key disagrees with {order:#?}"
        ));
    }
    if let (Some((_, secret)), Some(expected)) = (successors.first(), &order.successor)
        && allows_cut_scope(&mut c, secret).await != should_allow(expected)
    {
        return Err(format!(
            "{pair:?}: Verify of the successor disagrees with {order:#?}"
        ));
    }
    // The case that was found: a scope cut UpdateKey reported as done must
    // hold on every key of the pair, the successor included.
    let cut_ok = [(pair.0, seen.answers[0]), (pair.1, seen.answers[1])]
        .iter()
        .any(|(op, answer)| *op == Op::CutScopes && answer.is_ok());
    if cut_ok {
        for (_, secret) in &successors {
            if allows_cut_scope(&mut c, secret).await {
                return Err(format!(
                    "{pair:?}: UpdateKey cut {CUT} and said so, but the successor still has it"
                ));
            }
        }
    }
    Ok(())
}

async fn every_pair_serialises(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let client = app.api().await;
    let began = Instant::now();
    let mut failures = Vec::new();
    let mut rounds = BTreeMap::new();
    'pairs: for (i, &x) in OPS.iter().enumerate() {
        for &y in &OPS[i..] {
            for round in 0..ROUNDS {
                if began.elapsed() > TIME_CAP {
                    break 'pairs;
                }
                let label = format!("{x:?}-{y:?}-{round}");
                if let Err(failure) = race_once(&client, (x, y), label).await {
                    failures.push(failure);
                }
                *rounds.entry(format!("{x:?}|{y:?}")).or_insert(0usize) += 1;
            }
        }
    }
    eprintln!(
        "admin races: {} rounds over {} pairs in {:.1?}, {} not serial",
        rounds.values().sum::<usize>(),
        rounds.len(),
        began.elapsed(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of the races ended in no serial order; first:\n{}",
        failures.len(),
        failures[0]
    );
    let pairs = OPS.len() * (OPS.len() + 1) / 2;
    assert_eq!(rounds.len(), pairs, "ran out of time before every pair ran");
    assert!(
        rounds.values().all(|n| *n >= MIN_ROUNDS),
        "too few rounds within {TIME_CAP:?}: {rounds:?}"
    );
    app.stop().await;
}
on_both_stores!(admin_writes_on_one_key, every_pair_serialises);
