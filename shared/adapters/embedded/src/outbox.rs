//! The embedded notifier: every message becomes an `.eml` file in the outbox folder (open
//! it with any mail client, or read it as text) and a log line. A file is named by the
//! notice's id (`app::outbox`), so a notice sent again replaces its own file: here even the
//! crash window between a send and its record makes no second copy.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::Utc;

use app::ports::{Message, Notifier, NotifyError};

pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Outbox { dir })
    }

    fn file_name(m: &Message) -> String {
        let to: String =
            m.to.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
        let kind = serde_json::to_value(m.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if m.id.is_empty() {
            return format!(
                "{}-{}-{kind}-{to}.eml",
                Utc::now().format("%Y%m%dT%H%M%S%.3f"),
                m.request_id
            );
        }
        // The id holds the request id, the transition's seq and the kind: sorted by name,
        // a request's files are in the order they were decided.
        format!("{}-{to}.eml", m.id)
    }
}

/// RFC 5322 text: headers, a blank line, the plain-text body. Lines end in LF, as files on
/// this machine do (mail tools take both): a link cut out of one with `grep` works as is.
pub fn render_eml(m: &Message) -> String {
    let to = if m.to.contains('@') {
        m.to.clone()
    } else {
        format!("\"{}\" <undisclosed-recipients:;>", m.to)
    };
    format!(
        "From: Image Request <image-request@localhost>\nTo: {to}\nSubject: {}\nDate: {}\nMessage-ID: <{}.{}@image-request.local>\nX-Image-Request-Id: {}\nX-Image-Request-Notice: {}\nX-Image-Request-Status: {}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{}\n",
        m.subject.replace(['\r', '\n'], " "),
        Utc::now().to_rfc2822(),
        ulid::Ulid::new(),
        m.request_id,
        m.request_id,
        m.id,
        m.status,
        m.text.replace('\r', ""),
    )
}

#[async_trait]
impl Notifier for Outbox {
    async fn send(&self, m: &Message) -> Result<(), NotifyError> {
        let path = self.dir.join(Self::file_name(m));
        let tmp = path.with_extension("tmp");
        let text = render_eml(m);
        // Write then rename, so a reader never sees half a message.
        tokio::fs::write(&tmp, text)
            .await
            .map_err(|e| NotifyError(e.to_string()))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| NotifyError(e.to_string()))?;
        tracing::info!(request_id = %m.request_id, to = m.to, subject = m.subject, file = %path.display(), "outbox: message written");
        Ok(())
    }
}
