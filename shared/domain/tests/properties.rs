//! Properties that must hold for every input, not only the examples: checked by proptest
//! on generated cases (in the test command).

use chrono::{TimeZone, Utc};
use domain::auth::token::{ApprovalClaims, TokenKeys};
use domain::{Action, ImageRef, RequestId, Status};
use proptest::prelude::*;
use strum::VariantArray;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,12}(-[a-z0-9]{1,6}){0,2}(\\.[a-z0-9]{1,4})?"
}

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"
}

proptest! {
    #[test]
    fn an_image_reference_survives_display_and_parse(n in name(), t in tag()) {
        let text = format!("{n}:{t}");
        let parsed = ImageRef::parse(&text).unwrap();
        prop_assert_eq!(parsed.name(), n.as_str());
        prop_assert_eq!(parsed.tag(), t.as_str());
        prop_assert_eq!(ImageRef::parse(&parsed.to_string()).unwrap(), parsed);
    }

    #[test]
    fn parsing_any_text_answers_and_never_panics(text in "\\PC{0,80}") {
        let _ = ImageRef::parse(&text);
        let _ = domain::Justification::parse(&text);
    }

    #[test]
    fn a_token_verifies_and_any_single_flipped_bit_does_not(
        approve in any::<bool>(),
        who in "[a-z]{1,10}@[a-z]{1,10}\\.dev",
        bit in any::<prop::sample::Index>(),
    ) {
        let keys = TokenKeys {
            active: "k1".into(),
            keys: [("k1".to_string(), "a-secret-of-at-least-thirty-two-bytes".to_string())].into(),
        };
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let claims = ApprovalClaims {
            request_id: RequestId::new(),
            approver: who,
            approve,
            expires: now.timestamp() + 3600,
        };
        let token = keys.sign(&claims);
        prop_assert_eq!(keys.verify::<ApprovalClaims>(&token, now).unwrap(), claims);
        let mut bytes = token.into_bytes();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        let tampered = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(keys.verify::<ApprovalClaims>(&tampered, now).is_err(), "{} verified", tampered);
    }

    #[test]
    fn no_path_leads_out_of_a_terminal_status_but_an_admins_retry(
        actions in prop::collection::vec(prop::sample::select(Action::VARIANTS), 1..40),
    ) {
        let mut at = Status::Received;
        for a in actions {
            let was = at;
            if let Ok(next) = at.apply(a) {
                if was.is_terminal() {
                    // The only way on from an end: a failed request provisioned (or removed)
                    // again. A rating stays where it is.
                    prop_assert!(
                        matches!(
                            (was, a, next),
                            (Status::Failed, Action::StartProvisioning | Action::StartRemoval, Status::Provisioning)
                                | (Status::Failed, Action::StartValidation, Status::Validating)
                        ) || (matches!(a, Action::RateUp | Action::RateDown) && next == was),
                        "{:?}",
                        (was, a, next)
                    );
                }
                at = next;
            }
        }
    }
}
