//! Who is looking at a console page: the signed-in person and their session's anti-forgery
//! token. How a session is found is [`super::session`]'s business.

use maud::{Markup, html};

use crate::domain::Caller;

/// The person signed in, as the domain sees them, with their session's anti-forgery token.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who is acting: the member of the token they signed in with.
    pub caller: Caller,
    /// The token every form of this session carries.
    pub csrf: String,
    /// When the session ends at the latest (unix milliseconds).
    pub expires_at: i64,
    /// The SHA-256 of the session cookie's secret: which session to end at sign-out.
    pub(crate) id_hash: String,
}

/// The hidden field that every form of the console carries.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}
