//! Each Lambda links only what it uses (ARCHITECTURE.md, "Which Lambda links what"): the
//! dependency graph cargo resolves for each function alone, as its release build sees it.

use std::collections::BTreeSet;
use std::process::Command;

/// The package names in `cargo tree -p <package> -e normal`.
fn linked(package: &str) -> BTreeSet<String> {
    tree(&["-e", "normal", "-p", package])
}

/// The package names `cargo tree` lists for these selections.
fn tree(select: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--locked", "--offline", "--prefix", "none"])
        .args(select)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

const FUNCTIONS: [&str; 5] = ["intake", "validate", "approval", "provision", "archive"];

#[test]
fn no_function_links_sqlite_or_the_embedded_backend() {
    for f in FUNCTIONS {
        let deps = linked(f);
        for banned in ["rusqlite", "libsqlite3-sys", "image-request-embedded"] {
            assert!(!deps.contains(banned), "{f} links {banned}");
        }
    }
}

#[test]
fn functions_link_one_tls_stack_and_no_credential_chain() {
    // ring for every TLS client; the Lambda's credentials come from its environment, so
    // aws-config's provider chain (profiles, SSO, STS) stays out of the bootstraps.
    for f in FUNCTIONS {
        let deps = linked(f);
        for banned in ["aws-lc-rs", "aws-lc-sys", "aws-config", "aws-sdk-sts", "aws-sdk-sso"] {
            assert!(!deps.contains(banned), "{f} links {banned}");
        }
        assert!(deps.contains("ring"), "{f} has a TLS provider");
    }
}

#[test]
fn no_function_carries_the_api_documents_code() {
    // The OpenAPI schemas are the CLI's and the tests' (`openapi` features); intake serves
    // the committed document as a string.
    for f in FUNCTIONS {
        assert!(!linked(f).contains("utoipa"), "{f} links utoipa");
    }
}

#[test]
fn nothing_in_the_build_compiles_a_second_tls_stack() {
    // The CLI and the tests use ring as the functions do: aws-lc's C library took minutes of
    // every fresh build (CI's included) for a second copy of what ring does.
    let all = tree(&["--workspace", "-e", "normal,build,dev"]);
    for banned in ["aws-lc-rs", "aws-lc-sys", "openssl-sys", "native-tls"] {
        assert!(!all.contains(banned), "the workspace builds {banned}");
    }
}

#[test]
fn queue_consumers_link_no_http_server() {
    for f in ["validate", "provision"] {
        let deps = linked(f);
        for banned in ["axum", "lambda_http", "image-request-http", "maud"] {
            assert!(!deps.contains(banned), "{f} links {banned}");
        }
    }
}

#[test]
fn each_function_links_the_aws_clients_it_calls_and_no_other() {
    let sdk = |f: &str| -> BTreeSet<String> {
        linked(f)
            .into_iter()
            .filter(|d| {
                [
                    "aws-sdk-dynamodb",
                    "aws-sdk-sqs",
                    "aws-sdk-sns",
                    "aws-sdk-ssm",
                    "aws-sdk-s3",
                ]
                .contains(&d.as_str())
            })
            .collect()
    };
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(sdk("intake"), set(&["aws-sdk-dynamodb", "aws-sdk-sqs", "aws-sdk-ssm"]));
    // Only validate sends mail (the notify queue's consumer, app::outbox): the others
    // write their notices with their transitions and queue them.
    assert_eq!(
        sdk("approval"),
        set(&["aws-sdk-dynamodb", "aws-sdk-sqs", "aws-sdk-ssm"])
    );
    assert_eq!(
        sdk("validate"),
        set(&["aws-sdk-dynamodb", "aws-sdk-sns", "aws-sdk-sqs", "aws-sdk-ssm"])
    );
    assert_eq!(
        sdk("provision"),
        set(&["aws-sdk-dynamodb", "aws-sdk-sqs", "aws-sdk-ssm"])
    );
    // The archive writes S3 only (the DynamoDB and SSM clients come with the adapter
    // crate, unused); only it links S3.
    assert_eq!(sdk("archive"), set(&["aws-sdk-dynamodb", "aws-sdk-s3", "aws-sdk-ssm"]));
}

#[test]
fn only_functions_that_call_out_link_an_http_client() {
    // intake answers from the store and the built-in catalog: no Chainguard, no Slack.
    let deps = linked("intake");
    for banned in ["reqwest", "image-request-chainguard", "image-request-slack"] {
        assert!(!deps.contains(banned), "intake links {banned}");
    }
    // approval reads the org's repositories (`GET /capacity`).
    assert!(linked("approval").contains("image-request-chainguard"));
    // provision creates repositories and tells nobody itself: no Slack client.
    assert!(!linked("provision").contains("image-request-slack"));
}

#[test]
fn the_domain_is_pure() {
    let deps = linked("image-request-domain");
    for banned in [
        "tokio",
        "aws-config",
        "aws-sdk-dynamodb",
        "rusqlite",
        "axum",
        "hyper",
        "reqwest",
        "image-request-app",
    ] {
        assert!(!deps.contains(banned), "the domain links {banned}");
    }
    let app = linked("image-request-app");
    for banned in ["aws-config", "rusqlite", "axum", "hyper", "reqwest"] {
        assert!(!app.contains(banned), "the app crate links {banned}");
    }
}
