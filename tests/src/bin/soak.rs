//! The soak: thousands of requests through the AWS adapters on the emulator (stacks
//! deployed from the template), with one Chainguard call in ten failing at random (the
//! local fake of its API, through the real client) and the consumers crashing at random
//! (failpoints: after a commit, after a create, before a message's delete). Then the
//! faults stop and the sweep heals what they stranded. Reports accepted, ended, waiting,
//! lost (must be 0), doubled (must be 0) and the time to drain, and checks every
//! invariant of the failpoint tests (`pipeline_tests::invariants`).
//!
//! moto's `TransactWriteItems` deep-copies the whole table on every call (its rollback),
//! so a transaction costs in proportion to the table and one stack's run grows with the
//! square of its requests: the requests go in rounds of `SOAK_ROUND` (100 on the AWS
//! backend), each on a fresh stack in an emulator reset between rounds, and the figures
//! add up.
//!
//! `tests/bench.sh soak` (`SOAK_REQUESTS=…`, 2,000 by default; `SOAK_SUBMITTERS=…`, 4;
//! `IMAGE_REQUEST_TEST_BACKEND=embedded` for the SQLite adapters, in one round)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::ports::QueueName;
use pipeline_tests::fake_chainguard::FakeChainguard;
use pipeline_tests::invariants::{check, recover};
use pipeline_tests::{start_polling, ShiftedClock, Stack};
use reqwest::Method;
use serde_json::{json, Value};

const CRASHES: [(&str, &str); 3] = [
    ("consumer.before_delete", "5%return"),
    ("commit.after", "2%return"),
    ("provision.after_create", "5%return"),
];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Queued or in flight, over every queue.
async fn depth(s: &Stack) -> usize {
    let mut n = 0;
    for q in QueueName::ALL {
        n += s.running.source.depth(q).await.unwrap_or(1);
    }
    n
}

/// How many of `ids` have not yet ended or come to wait for a person.
async fn moving(s: &Stack, ids: &BTreeSet<String>) -> usize {
    let mut n = 0;
    for id in ids {
        let r = s.running.app.store.get(id.parse().unwrap()).await.unwrap().unwrap();
        if !(r.status().is_terminal() || r.status() == domain::Status::PendingApproval) {
            n += 1;
        }
    }
    n
}

/// One submission, as a client makes it: a 5xx is asked again, under the same
/// idempotency key, backing off.
async fn submit(s: &Stack, body: &Value, key: &str) -> Result<String, String> {
    let mut last = String::new();
    for wait in [0u64, 100, 400, 1600, 6400] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        match s
            .dev
            .call(Method::POST, "/requests", Some(body), &[("idempotency-key", key)])
            .await
        {
            Ok((202 | 200, v)) => return Ok(v["id"].as_str().unwrap().to_string()),
            Err(cgr_request::client::CallError::Api { status, .. }) if status >= 500 => {
                last = format!("{status} after 5 tries")
            }
            other => return Err(format!("{other:?}")),
        }
    }
    Err(last)
}

/// `count` requests (the `first`th on) through one fresh stack, faults on; then healed
/// and checked.
async fn round(first: usize, count: usize, submitters: usize) -> Value {
    let fake = FakeChainguard::start().await;
    fake.state.lock().unwrap().fail_percent = 10;
    let clock = Arc::new(ShiftedClock::default());
    // moto answers some 30 calls a second here: the tests' 10 ms polling of three empty
    // queues would take all of them, and even 200 ms half.
    let s = Arc::new(start_polling(Duration::from_secs(1), Some(fake.client(None)), clock.clone()).await);
    let crashed_before: Vec<usize> = CRASHES.iter().map(|(p, _)| app::failpoints::fired(p)).collect();
    for (point, action) in CRASHES {
        fail::cfg(point, action).unwrap();
    }
    let names = domain::Catalog::embedded().names().to_vec();
    // One image in ten asked for `prod` (a person decides; left waiting), the rest `dev`
    // (auto-approved). Past the catalog's length images repeat: joins of open requests,
    // and already available ones.
    let started = Instant::now();
    let mut tasks = vec![];
    for worker in 0..submitters {
        let (s, names) = (s.clone(), names.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = vec![];
            for i in (first + worker..first + count).step_by(submitters) {
                let env = if i % 10 == 9 { "prod" } else { "dev" };
                let body = json!({ "image": names[i % names.len()], "justification": "soak", "environment": env });
                out.push(submit(&s, &body, &format!("soak-{i}")).await);
            }
            out
        }));
    }
    let (mut ids, mut accepted, mut refused) = (BTreeSet::new(), 0, vec![]);
    for t in tasks {
        for a in t.await.unwrap() {
            match a {
                Ok(id) => {
                    accepted += 1;
                    ids.insert(id);
                }
                Err(e) => refused.push(e),
            }
        }
    }
    let submitted = started.elapsed();
    eprintln!(
        "soak: {accepted} accepted ({} requests, the rest joins) in {submitted:?}; {} refused",
        ids.len(),
        refused.len()
    );

    // Drained: every queue empty and every request ended or waiting, with the faults on.
    // What they stranded (a message dead-lettered before its request could move) waits for
    // the sweep: queues empty and nothing moving for 20 s ends the wait.
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut quiet: Option<Instant> = None;
    let drained = loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if Instant::now() > deadline {
            break None;
        }
        if depth(&s).await > 0 {
            quiet = None;
            continue;
        }
        if moving(&s, &ids).await == 0 {
            break Some(started.elapsed());
        }
        if quiet.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(20) {
            break None;
        }
    };
    let stranded = moving(&s, &ids).await;
    for (point, _) in CRASHES {
        fail::remove(point);
    }
    let crashes: BTreeMap<&str, usize> = CRASHES
        .iter()
        .zip(crashed_before)
        .map(|((p, _), before)| (*p, app::failpoints::fired(p) - before))
        .collect();
    fake.state.lock().unwrap().fail_percent = 0;
    let healing = Instant::now();
    recover(&s, &clock).await;
    let healed = healing.elapsed();

    // Every request the stack stored, accepted or not: a submission refused to its client
    // must not have left one behind that nobody moves.
    let stored: BTreeSet<String> = s
        .running
        .app
        .store
        .created_between(
            chrono::DateTime::UNIX_EPOCH,
            chrono::Utc::now() + chrono::Duration::days(3650),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    let stored_unanswered = stored.difference(&ids).count();
    let ids: BTreeSet<String> = ids.union(&stored).cloned().collect();
    let lost = moving(&s, &ids).await;
    let repos = fake.repo_names();
    let distinct: BTreeSet<&String> = repos.iter().collect();
    let ids: Vec<String> = ids.into_iter().collect();
    let out = check(&s, &ids, &repos, 0).await;
    let chainguard_failed = fake.state.lock().unwrap().failed_at_random;
    json!({
        "submitted": count,
        "accepted": accepted,
        "distinct_requests": ids.len(),
        "refused": refused,
        "stored_though_refused": stored_unanswered,
        "by_status": out.by_status,
        "lost": lost,
        "doubled": (repos.len() - distinct.len()) + out.extra_copies,
        "chainguard_calls_failed_at_random": chainguard_failed,
        "consumer_crashes": crashes,
        "submit_seconds": submitted.as_secs_f64(),
        "drain_seconds": drained.map(|d| d.as_secs_f64()),
        "stranded_until_the_sweep": stranded,
        "heal_seconds": healed.as_secs_f64(),
        "repositories": repos.len(),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let n = env_or("SOAK_REQUESTS", 2000);
    let submitters = env_or("SOAK_SUBMITTERS", 4);
    let on_aws = pipeline_tests::aws::wanted();
    let backend = if on_aws { "aws" } else { "embedded" };
    let per_round = env_or("SOAK_ROUND", if on_aws { 100 } else { n }).max(1);
    eprintln!(
        "soak ({backend}): {n} requests in rounds of {per_round}, {submitters} submitters, 10% of Chainguard calls failing, consumers crashing"
    );
    let scenario = fail::FailScenario::setup();
    let mut rounds = vec![];
    let mut first = 0;
    while first < n {
        let count = per_round.min(n - first);
        let r = round(first, count, submitters).await;
        eprintln!("soak: round {}: {r}", rounds.len() + 1);
        rounds.push(r);
        first += count;
        if on_aws {
            // moto keeps every stack in memory (and its copies grow with each): start the
            // next round on an empty emulator.
            let reset = format!("{}/moto-api/reset", pipeline_tests::aws::moto_url());
            reqwest::Client::new()
                .post(reset)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
        }
    }
    scenario.teardown();
    let sum = |k: &str| rounds.iter().map(|r| r[k].as_u64().unwrap_or(0)).sum::<u64>();
    let seconds = |k: &str| {
        rounds
            .iter()
            .map(|r| r[k].as_f64().unwrap_or(f64::NAN))
            .collect::<Vec<_>>()
    };
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut crashes: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rounds {
        for (k, v) in r["by_status"].as_object().unwrap() {
            *by_status.entry(k.clone()).or_default() += v.as_u64().unwrap();
        }
        for (k, v) in r["consumer_crashes"].as_object().unwrap() {
            *crashes.entry(k.clone()).or_default() += v.as_u64().unwrap();
        }
    }
    let refused: Vec<&Value> = rounds.iter().flat_map(|r| r["refused"].as_array().unwrap()).collect();
    let report = json!({
        "backend": backend,
        "requests_submitted": n,
        "rounds": rounds.len(),
        "submitters": submitters,
        "accepted": sum("accepted"),
        "distinct_requests": sum("distinct_requests"),
        "refused": refused.len(),
        "stored_though_refused": sum("stored_though_refused"),
        "by_status": by_status,
        "lost": sum("lost"),
        "doubled": sum("doubled"),
        "chainguard_calls_failed_at_random": sum("chainguard_calls_failed_at_random"),
        "consumer_crashes": crashes,
        "stranded_until_the_sweep": sum("stranded_until_the_sweep"),
        "drain_seconds_per_round": seconds("drain_seconds"),
        "heal_seconds_per_round": seconds("heal_seconds"),
    });
    std::fs::create_dir_all("target/bench").unwrap();
    std::fs::write(format!("target/bench/soak-{backend}.json"), format!("{report:#}\n")).unwrap();
    println!("{report:#}");
    // A submission still refused after a client's five tries was not accepted (the client
    // was told, a 503); whatever the store kept of one is checked with the rest.
    if !refused.is_empty() {
        eprintln!("soak: refused after five tries: {refused:?}");
    }
    assert_eq!(report["lost"], 0);
    assert_eq!(report["doubled"], 0);
}
