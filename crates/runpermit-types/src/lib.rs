//! The regime's shared vocabulary, at the bottom of the workspace: every crate that names a
//! status, an organization kind or a role, reports a field error or checks an identifier uses
//! these, so that the store, the policy, the authority and the clients read the same words
//! the same way.
//!
//! - [`names`]: closed sets of names, each written as one snake_case text in JSON, the store,
//!   the audit trail and the CLI, and parsed back with an error that lists what is accepted;
//! - [`identity`]: [`OrgKind`], [`Role`];
//! - [`application`]: [`ApplicationStatus`], [`ApplicationAction`], [`ReviewDecision`],
//!   [`PermitState`];
//! - [`run`]: [`RunStatus`], [`RunAction`], [`RunActor`], [`MilestoneStatus`],
//!   [`IncidentStatus`];
//! - [`field`]: [`FieldError`], [`InvalidInput`] and the accumulator [`Problems`];
//! - [`text`]: the text and identifier rules every input goes through.
//!
//! Pure: no IO, no clock, no other runpermit crate.

pub mod application;
pub mod field;
pub mod identity;
pub mod names;
pub mod run;
pub mod text;

pub use application::{ApplicationAction, ApplicationStatus, PermitState, ReviewDecision};
pub use field::{FieldError, InvalidInput, Problems};
pub use identity::{OrgKind, Role};
pub use names::UnknownName;
pub use run::{
    IncidentStatus, MilestoneStatus, RunAction, RunActor, RunFlagKind, RunStatus, UsageFigure,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name reads back as itself, and serde writes the same text as `as_str`.
    fn round_trip<T>(all: &[T])
    where
        T: Copy
            + PartialEq
            + std::fmt::Debug
            + std::fmt::Display
            + std::str::FromStr<Err = UnknownName>
            + serde::Serialize,
    {
        for v in all {
            let text = v.to_string();
            assert_eq!(text.parse::<T>().unwrap(), *v);
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(text));
        }
    }

    #[test]
    fn every_name_round_trips_through_text_and_json() {
        round_trip(OrgKind::ALL);
        round_trip(Role::ALL);
        round_trip(ApplicationStatus::ALL);
        round_trip(ApplicationAction::ALL);
        round_trip(ReviewDecision::ALL);
        round_trip(PermitState::ALL);
        round_trip(RunStatus::ALL);
        round_trip(RunAction::ALL);
        round_trip(RunActor::ALL);
        round_trip(MilestoneStatus::ALL);
        round_trip(IncidentStatus::ALL);
    }

    #[test]
    fn an_unknown_name_lists_what_is_accepted() {
        let err = "halted".parse::<RunStatus>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown run status \"halted\": expected one of active, milestone_due, paused, \
             suspended, revoked, terminated, completed"
        );
        assert!("Admin".parse::<Role>().is_err());
    }
}
