//! The `cgr-request` binary as a user runs it, against a local stack.

use std::process::{Command, Output};

use app::config::Settings;
use cgr_request::server::{start, Backend, Options};

fn cli(url: &str, dir: &std::path::Path, args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cgr-request"))
        .args(["--url", url, "--data-dir"])
        .arg(dir)
        .args(args)
        .env_remove("CGR_REQUEST_CLIENT")
        .env_remove("CGR_REQUEST_SECRET")
        .env_remove("REQUESTS_TABLE")
        .env_remove("AUDIT_TABLE")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A local stack on a free port with a fresh data folder, and the CLI pointed at it, run
/// off the test's runtime (the server answering it runs there).
async fn local() -> (
    cgr_request::server::Running,
    tempfile::TempDir,
    String,
    impl Fn(&[&str]) -> tokio::task::JoinHandle<Output>,
) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: dir.path().into(),
        ..Settings::default()
    };
    let running = start(settings, Options::default()).await.unwrap();
    let url = format!("http://{}", running.addr);
    let (u, d) = (url.clone(), dir.path().to_path_buf());
    let run = move |args: &[&str]| {
        let (u, d) = (u.clone(), d.clone());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || cli(&u, &d, &args))
    };
    (running, dir, url, run)
}

#[tokio::test(flavor = "multi_thread")]
async fn add_approve_and_follow_a_request_from_the_command_line() {
    let (running, _dir, _url, run) = local().await;

    let out = run(&[
        "-o",
        "json",
        "add",
        "busybox",
        "--justification",
        "Debug shell for staging",
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["status"], "received");

    // Pending shows up for the admin, then the admin approves from the CLI.
    let mut pending = String::new();
    for _ in 0..200 {
        pending = text(&run(&["admin", "pending"]).await.unwrap());
        if pending.contains(&id) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(pending.contains(&id) && pending.contains("busybox:latest"), "{pending}");
    let id_s = id.as_str();
    // Asking again while it waits starts nothing new: the answer names the open request.
    let out = run(&["add", "busybox", "-j", "still need it"]).await.unwrap();
    let shown = text(&out);
    assert!(
        out.status.success()
            && shown.contains(&format!(
                "busybox:latest was already asked for: joined {id} (waiting for a decision)"
            )),
        "{shown}"
    );
    let out = run(&["admin", "approve", id_s, "--reason", "ok"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let out = run(&["status", id_s, "--wait", "--timeout", "20s"]).await.unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("provisioned") && shown.contains("cgr.dev/example.com/busybox:latest"),
        "{shown}"
    );
    assert!(
        shown.contains("Audit timeline") && shown.contains("email:platform-admin@example.com"),
        "{shown}"
    );

    // Asked to go, approved, gone: `remove` is `add`'s mirror.
    let out = run(&["-o", "json", "remove", "busybox", "-j", "done debugging"])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let removal: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rid = removal["id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        if text(&run(&["admin", "pending"]).await.unwrap()).contains(&rid) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = run(&["admin", "approve", &rid, "--reason", "ok"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["status", &rid, "--wait", "--timeout", "20s"]).await.unwrap();
    let shown = text(&out);
    assert!(
        out.status.success() && shown.contains("removed from the registry") && shown.contains("removal started"),
        "{shown}"
    );
    let out = run(&["audit", "--kind", "remove"]).await.unwrap();
    assert!(
        text(&out).contains(&rid) && text(&out).contains("remove busybox"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains(id_s), "additions are left out");

    // A rejected request exits 3 under --wait, and says what was meant.
    let out = run(&["add", "busybx", "-j", "typo", "--wait", "--timeout", "20s"])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("Did you mean  busybox"), "{}", text(&out));

    // Errors say what to do next.
    let out = run(&["--client", "dev", "--secret", "wrong", "status", id_s])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("did not accept this client's signature"),
        "{}",
        text(&out)
    );

    // Ops read the trail straight from the store.
    let out = run(&["audit", "--request", id_s]).await.unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("pending_approval -> approved") && shown.contains("email:platform-admin@example.com"),
        "{shown}"
    );
    let out = run(&["-o", "json", "audit", "--approver", "platform-admin@example.com"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "events");
    let decided: Vec<&serde_json::Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["request_id"])
        .collect();
    assert!(decided.contains(&&serde_json::json!(id)), "{v:#}");
    let out = run(&["audit", "verify", id_s]).await.unwrap();
    assert!(
        out.status.success() && text(&out).contains("the audit chain holds (6 events"),
        "{}",
        text(&out)
    );
    // An evidence run: every request touched in a range, then a summary.
    let out = run(&["audit", "verify", "--all", "--since", "2020-01-01"])
        .await
        .unwrap();
    assert!(
        out.status.success() && text(&out).contains(" hold, 0 broken"),
        "{}",
        text(&out)
    );
    assert_eq!(
        run(&["audit", "verify"]).await.unwrap().status.code(),
        Some(2),
        "an id or --all"
    );
    let out = run(&["audit", "--stuck-for", "soon"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not a duration"), "{}", text(&out));
    drop(running);
}

/// With REQUESTS_TABLE and AUDIT_TABLE set, `audit` reads DynamoDB (here, the emulator).
#[tokio::test(flavor = "multi_thread")]
async fn audit_reads_dynamodb_when_the_tables_are_named() {
    let moto = std::env::var("MOTO_URL").expect("this test needs MOTO_URL: run tests/run.sh");
    let sdk = aws_adapter::setup::emulator_config(&moto).await;
    let prefix = format!("cli{}", std::process::id());
    let names = aws_adapter::setup::create(&sdk, &prefix, 3, 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: dir.path().into(),
        ..Settings::default()
    };
    let opts = Options {
        poll_interval: std::time::Duration::from_millis(10),
        backend: Backend::Aws {
            sdk,
            names: names.clone(),
        },
        ..Options::default()
    };
    let running = start(settings, opts).await.unwrap();
    let url = format!("http://{}", running.addr);
    let d = dir.path().to_path_buf();
    let audit = move |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cgr-request"))
            .arg("--data-dir")
            .arg(&d)
            .args(args)
            .env("REQUESTS_TABLE", &names.requests_table)
            .env("AUDIT_TABLE", &names.audit_table)
            .env("AWS_ENDPOINT_URL", &moto)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap()
    };
    let (u, d) = (url.clone(), dir.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<String> = ["-o", "json", "add", "go", "-j", "builds", "--env", "dev", "--wait"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        cli(&u, &d, &args)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking({
        let audit = audit.clone();
        move || audit(&["-o", "json", "audit", "--requester", "developer@example.com"])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["requests"][0]["id"], id.as_str());
    assert_eq!(v["requests"][0]["status"], "provisioned");
    let out = tokio::task::spawn_blocking(move || audit(&["audit", "verify", &id]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("the audit chain holds (5 events"), "{}", text(&out));
    drop(running);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requested_images_file_is_checked_then_submitted_once_and_approved_by_the_merge() {
    let (running, dir, _url, run) = local().await;
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let out = run(&["add", "go", "-j", "builds", "--env", "dev", "--wait"])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "images:\n  - name: pyhton\n    justification: Data jobs\n    requestedBy: alice\n  - name: go\n    justification: builds\n    requestedBy: bob\n  - name: busybox\n    requestedBy: carol\n",
    )
    .unwrap();
    let out = run(&["validate-file", bad.to_str().unwrap()]).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    let f = bad.display();
    assert_eq!(
        lines,
        [
            format!("::error file={f},line=2::pyhton is not in the Chainguard catalog; did you mean python?"),
            format!(
                "::error file={f},line=5::go is already in the organization: docker pull cgr.dev/example.com/go:latest"
            ),
            format!("::error file={f},line=8::busybox:latest: missing justification (approvers read it)"),
        ],
        "{}",
        text(&out)
    );

    // A fork's pull request: no server and no credentials, yet every offline problem of the
    // file, each on its line (and `--offline` asks the same of a configured CI).
    let nowhere = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "images:\n  - name: pyhton\n    colour: blue\n    requestedBy: alice\n  - justification: x\n    requestedBy: bob\n  - name: pyhton\n    justification: again\n    requestedBy: carol\n    environment: moon\n",
    )
    .unwrap();
    let b = broken.to_str().unwrap().to_string();
    for (url, data, extra) in [
        ("http://127.0.0.1:9", nowhere.path(), None),
        ("http://127.0.0.1:9", dir.path(), Some("--offline")),
    ] {
        let mut a = vec!["validate-file".to_string(), b.clone()];
        a.extend(extra.map(String::from));
        let (url, data) = (url.to_string(), data.to_path_buf());
        let out = tokio::task::spawn_blocking(move || cli(&url, &data, &a)).await.unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().map(|l| l.split("::").last().unwrap()).collect();
        assert_eq!(
            lines,
            [
                "pyhton:latest: missing justification (approvers read it)",
                "unknown field `colour`, expected one of name, justification, requestedBy, environment, remove",
                "missing `name`",
                "pyhton:latest is listed twice (first on line 2)",
            ],
            "{}",
            text(&out)
        );
        assert!(text(&out).contains("checked offline"), "{}", text(&out));
    }

    let good = dir.path().join("requested-images.yaml");
    std::fs::write(
        &good,
        "images:\n  - name: busybox\n    justification: Debug shell\n    requestedBy: alice\n  - name: python:3.12\n    justification: Data jobs\n    requestedBy: bob@example.com\n    environment: staging\n",
    )
    .unwrap();
    let g = good.to_str().unwrap().to_string();
    let out = run(&["validate-file", &g]).await.unwrap();
    assert!(
        out.status.success() && text(&out).contains("2 image(s) OK"),
        "{}",
        text(&out)
    );

    // Only a client allowed to pre-approve may claim a merge as the approval.
    let merge = [
        "--commit",
        "0123abc",
        "--repository",
        "acme/platform",
        "--pull-request",
        "42",
        "--merged-by",
        "octocat",
    ];
    let mut as_dev = args(&["submit-file", &g]);
    as_dev.extend(args(&merge));
    let out = run(&as_dev.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("may not submit pre-approved"), "{}", text(&out));

    let mut submit = args(&["--client", "merge-bot", "submit-file", &g, "--wait", "--timeout", "30s"]);
    submit.extend(args(&merge));
    let out = run(&submit.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("busybox:latest  docker pull cgr.dev/example.com/busybox:latest")
            && shown.contains("python:3.12  docker pull cgr.dev/example.com/python:3.12"),
        "{shown}"
    );
    // The PR comment (this output) says who approved, when and why.
    assert!(
        shown.contains("  Approved by github:octocat on ")
            && shown.contains("  > approved by merging acme/platform#42 (commit 0123abc)"),
        "{shown}"
    );
    // Re-running the merge workflow submits nothing twice.
    let out = run(&submit.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(text(&out).matches("(already submitted)").count(), 2, "{}", text(&out));

    let out = run(&["-o", "json", "audit", "--image", "busybox"]).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let requests = v["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{v:#}");
    let r = &requests[0];
    assert_eq!(r["requester"], "github:alice");
    assert_eq!(r["channel"], "pull_request");
    assert_eq!(r["decision"]["by"], "github:octocat");
    assert_eq!(r["decision"]["channel"], "pull_request");
    assert_eq!(
        r["decision"]["reason"],
        "approved by merging acme/platform#42 (commit 0123abc)"
    );

    // An entry whose image someone already asked for joins that request, and says so.
    let out = run(&["-o", "json", "add", "postgres", "-j", "reporting"])
        .await
        .unwrap();
    let open: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let wanted = dir.path().join("wanted.yaml");
    std::fs::write(
        &wanted,
        "images:\n  - name: postgres\n    justification: Analytics too\n    requestedBy: carol\n",
    )
    .unwrap();
    let w = wanted.to_str().unwrap().to_string();
    let out = run(&["--client", "merge-bot", "submit-file", &w, "--commit", "89abcde"])
        .await
        .unwrap();
    assert!(
        out.status.success()
            && text(&out).contains(&format!("{}  postgres:latest", open["id"].as_str().unwrap()))
            && text(&out).contains("(already asked for: joined that request)"),
        "{}",
        text(&out)
    );

    // A later pull request removes one: checked against the org, approved by its merge.
    let removal = dir.path().join("removal.yaml");
    std::fs::write(
        &removal,
        "images:\n  - name: busybox\n    justification: Replaced by the distroless base\n    requestedBy: alice\n    remove: true\n  - name: nginx\n    justification: Never used\n    requestedBy: alice\n    remove: true\n",
    )
    .unwrap();
    let r = removal.to_str().unwrap().to_string();
    let out = run(&["validate-file", &r]).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("line=6::nginx is not in the organization: there is nothing to remove")
            && !text(&out).contains("busybox"),
        "{}",
        text(&out)
    );
    std::fs::write(
        &removal,
        "images:\n  - name: busybox\n    justification: Replaced by the distroless base\n    requestedBy: alice\n    remove: true\n",
    )
    .unwrap();
    let mut submit = args(&["--client", "merge-bot", "submit-file", &r, "--wait", "--timeout", "30s"]);
    submit.extend(args(&[
        "--commit",
        "4567def",
        "--repository",
        "acme/platform",
        "--pull-request",
        "43",
        "--merged-by",
        "octocat",
    ]));
    let out = run(&submit.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success() && shown.contains("busybox  removed"), "{shown}");
    let out = run(&["-o", "json", "audit", "--image", "busybox", "--kind", "remove"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let requests = v["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{v:#}");
    assert_eq!(
        (
            &requests[0]["kind"],
            &requests[0]["status"],
            &requests[0]["decision"]["by"]
        ),
        (
            &serde_json::json!("remove"),
            &serde_json::json!("provisioned"),
            &serde_json::json!("github:octocat")
        )
    );
    drop(running);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_behaves_in_pipes_and_scripts() {
    let (running, dir, url, run) = local().await;
    let d = dir.path().to_path_buf();

    // The reader is gone before the first line is written (`| head -1` done early): the
    // CLI stops quietly, as a filter does, instead of panicking (exit 101).
    let (u, dd) = (url.clone(), d.clone());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cgr-request"))
            .args(["--url", &u, "--data-dir"])
            .arg(&dd)
            .args(["catalog", "search", "py"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    assert_ne!(out.status.code(), Some(101));

    // Exit codes: 2 usage, 3 ended badly, 4 gave up waiting, 1 any other error.
    assert_eq!(run(&["add", "--no-such-flag"]).await.unwrap().status.code(), Some(2));
    let out = run(&["-o", "json", "add", "nginx", "-j", "web tier"]).await.unwrap();
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run(&["status", &id, "--wait", "--timeout", "1s"]).await.unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("after 1s"), "{}", text(&out));
    for _ in 0..200 {
        let out = run(&["-o", "json", "status", &id]).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["status"] == "pending_approval" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let out = run(&["admin", "deny", &id, "--reason", "use the nginx we have"])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["status", &id, "--wait"]).await.unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // With -o json, an error is JSON on stderr too.
    let out = run(&["-o", "json", "status", "req-nope"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(e["error"].as_str().unwrap().contains("req-nope"), "{e}");

    // Tables line up whatever their cells hold, and `status` and `audit` print a timeline
    // with the same columns and words.
    let audit = text(&run(&["audit", "--request", &id]).await.unwrap());
    let status = text(&run(&["status", &id]).await.unwrap());
    let timeline = |t: &str| -> Vec<String> {
        t.lines()
            .skip_while(|l| !l.starts_with("TIME "))
            .take_while(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    assert_eq!(timeline(&audit), timeline(&status));
    assert_aligned(&timeline(&audit));
    let listed = text(
        &run(&["audit", "--requester", "email:developer@example.com"])
            .await
            .unwrap(),
    );
    assert_aligned(&listed.lines().map(String::from).collect::<Vec<_>>());

    // Every command says what it does and shows an example.
    let commands = [
        "serve",
        "add",
        "status",
        "admin",
        "admin pending",
        "admin approve",
        "admin deny",
        "admin retry",
        "catalog",
        "catalog search",
        "validate-file",
        "submit-file",
        "remove",
        "audit",
        "audit verify",
        "openapi",
        "completions",
    ];
    for c in commands {
        let mut a: Vec<&str> = c.split(' ').collect();
        a.push("--help");
        let out = run(&a).await.unwrap();
        let help = text(&out);
        assert!(
            out.status.success() && help.contains("Example: cgr-request "),
            "{c}: {help}"
        );
    }

    // Completions for the shells people use.
    for (shell, marker) in [
        ("bash", "complete -F _cgr__request"),
        ("zsh", "#compdef cgr-request"),
        ("fish", "complete -c cgr-request"),
    ] {
        let out = run(&["completions", shell]).await.unwrap();
        assert!(out.status.success() && text(&out).contains(marker), "{shell}");
        assert!(text(&out).contains("validate-file"), "{shell}");
    }
    drop(running);
}

/// Every column of a printed table starts where its header does: the cell before it ends
/// short of it, and its own cell (where there is one) starts right there.
fn assert_aligned(lines: &[String]) {
    let header = &lines[0];
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || header[..i].ends_with("  ")))
        .map(|(i, _)| i)
        .collect();
    assert!(starts.len() > 3, "{header}");
    for line in &lines[1..] {
        let chars: Vec<char> = line.chars().collect();
        for &p in &starts[1..] {
            if p < chars.len() {
                assert_eq!(chars[p - 1], ' ', "a cell runs into the next column:\n{header}\n{line}");
            }
        }
        assert_ne!(chars[starts[1]], ' ', "{header}\n{line}");
    }
    assert!(lines.len() > 1, "a table with rows");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_report_and_capacity_from_the_command_line() {
    let (_running, dir, _url, run) = local().await;
    let out = run(&["-o", "json", "add", "go", "--env", "dev", "-j", "build tool", "--wait"])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["id"].as_str().unwrap().to_string();

    let out = run(&["rate", &id, "up", "--comment", "ready in seconds"])
        .await
        .unwrap();
    assert_eq!(text(&out).trim(), format!("{id}  rated up: thank you"));
    let out = run(&["rate", &id, "sideways"]).await.unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error: {}", text(&out));

    // The table fits in 100 columns; the CSV has a header and one row per week.
    let html = dir.path().join("report.html");
    let out = run(&["report", "--weeks", "2", "--html", html.to_str().unwrap()])
        .await
        .unwrap();
    let table = text(&out);
    assert!(out.status.success(), "{table}");
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
    let total = table.lines().find(|l| l.starts_with("total")).expect("a total row");
    let cells: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(&cells[..4], &["total", "1", "1", "0"], "{table}");
    assert!(table.contains("Most asked for: go (1)"), "{table}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg") && !page.contains("<script"));

    let out = run(&["-o", "csv", "report", "--weeks", "2"]).await.unwrap();
    let csv = String::from_utf8_lossy(&out.stdout).to_string();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    let header: Vec<&str> = rows[0].split(',').collect();
    let this_week: Vec<&str> = rows[2].split(',').collect();
    let field = |name: &str| this_week[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(
        (field("requests"), field("auto_approved"), field("provisioned")),
        ("1", "1", "1")
    );
    assert_eq!((field("satisfaction_up"), field("satisfaction_score")), ("1", "100"));
    assert_eq!(field("time_saved_hours"), "4");
    let out = run(&["-o", "csv", "status", &id]).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("-o csv is for `report` only"));

    let out = run(&["admin", "capacity"]).await.unwrap();
    let capacity = text(&out);
    assert!(capacity.starts_with("1 of 2,500 repositories used (0%)"), "{capacity}");
    assert!(
        capacity.contains("go") && capacity.contains("email:developer@example.com"),
        "{capacity}"
    );
}

/// `admin redrive` on the local server's queues: dead letters go back onto their queue,
/// where the consumer takes them again.
#[tokio::test(flavor = "multi_thread")]
async fn admin_redrive_moves_dead_letters_back_onto_their_queue() {
    let (running, _dir, _url, run) = local().await;
    // A dead letter as the queue leaves one: a message for a request that is not there.
    let body = r#"{"request_id":"req-01JD3XQ4Z8K9M2N5P7R8S0T1V2","trace_id":"t"}"#;
    running
        .db
        .with(move |c| {
            c.execute(
                "INSERT INTO dead_letters (id, queue, body, receive_count, sent_at, dead_at) VALUES (1, 'validate', ?1, 5, 0, 0)",
                [body],
            )
            .map_err(|e| app::ports::StoreError::Unavailable(e.to_string()))
        })
        .await
        .unwrap();
    let out = run(&["admin", "redrive", "validate"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("moved 1 message(s) from the validate dead letters"),
        "{}",
        text(&out)
    );
    assert!(running
        .db
        .dead_letters(app::ports::QueueName::Validate)
        .await
        .unwrap()
        .is_empty());
    // The consumer took it (a request that is not there: nothing to do) and deleted it.
    for _ in 0..200 {
        if running.db.queue_depth(app::ports::QueueName::Validate).await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        running.db.queue_depth(app::ports::QueueName::Validate).await.unwrap(),
        0
    );
    let out = run(&["-o", "json", "admin", "redrive", "notify"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"queue": "notify", "moved": 0}));
    // Half an SQS address is a mistake, not a reason to touch the local queues.
    let out = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_cgr-request"))
            .args(["admin", "redrive", "provision"])
            .env("PROVISION_QUEUE_URL", "http://127.0.0.1:1/queue/x")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("set both PROVISION_QUEUE_URL and PROVISION_DLQ_URL"),
        "{}",
        text(&out)
    );
}

/// With `<QUEUE>_QUEUE_URL` and `<QUEUE>_DLQ_URL` set, `admin redrive` moves SQS's dead
/// letters (here, the emulator's) back onto the queue.
#[tokio::test(flavor = "multi_thread")]
async fn admin_redrive_moves_sqs_dead_letters_when_the_queues_are_named() {
    let moto = std::env::var("MOTO_URL").expect("this test needs MOTO_URL: run tests/run.sh");
    let sdk = aws_adapter::setup::emulator_config(&moto).await;
    let names = aws_adapter::setup::create(&sdk, &format!("redrive{}", std::process::id()), 3, 0)
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dlq = names.queues.notify_dlq.clone().unwrap();
    for n in 0..12 {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(format!(
                r#"{{"request_id":"req-01JD3XQ4Z8K9M2N5P7R8S0T1V2","trace_id":"{n}","notice":3}}"#
            ))
            .send()
            .await
            .unwrap();
    }
    let (main, d) = (names.queues.notify.clone(), dlq.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cgr-request"))
            .args(["-o", "json", "admin", "redrive", "notify"])
            .env("NOTIFY_QUEUE_URL", &main)
            .env("NOTIFY_DLQ_URL", &d)
            .env("AWS_ENDPOINT_URL", &moto)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["moved"], 12);
    let count = |url: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages]
                .parse::<usize>()
                .unwrap()
        }
    };
    assert_eq!(count(dlq).await, 0);
    assert_eq!(count(names.queues.notify.clone()).await, 12);
}
