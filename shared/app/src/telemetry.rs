//! Logging: JSON lines in Lambda (CloudWatch), readable lines locally.

use tracing_subscriber::EnvFilter;

/// Crates that log raw events, requests or headers below `info` (bodies with Slack
/// response URLs, paths with approval tokens, signature headers): held at `info` whatever
/// `RUST_LOG` asks, so turning logging up to debug a function never writes a credential.
const RAW_LOGGERS: [&str; 6] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "hyper",
    "reqwest",
    "aws_smithy_runtime",
];

fn capped(filter: EnvFilter) -> EnvFilter {
    RAW_LOGGERS.iter().fold(filter, |f, target| {
        f.add_directive(format!("{target}=info").parse().expect("a valid directive"))
    })
}

pub fn init() {
    let filter = capped(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if in_lambda {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .without_time()
            .try_init()
    } else {
        builder.compact().try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_everywhere_still_keeps_raw_loggers_at_info() {
        let f = capped(EnvFilter::new("trace")).to_string();
        for target in RAW_LOGGERS {
            assert!(f.contains(&format!("{target}=info")), "{f}");
        }
        assert!(f.contains("trace"), "the rest stays as asked: {f}");
    }
}
