//! Identity: organizations, their members and API tokens, the authority's permit-signing
//! keys and providers' usage-reporting keys.

mod records;
pub(crate) mod sql;

use crate::StoreError;
pub use records::{Member, Organization, Principal, ProviderKey, Session, SigningKey, Token};

/// Who is who: organizations, members, tokens and keys. Times are unix milliseconds.
#[async_trait::async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    async fn organization(&self, id: &str) -> Result<Option<Organization>, StoreError>;

    /// All organizations, oldest first.
    async fn organizations(&self) -> Result<Vec<Organization>, StoreError>;

    /// How many organizations exist: 0 means a first start that needs bootstrapping.
    async fn organization_count(&self) -> Result<i64, StoreError>;

    async fn member(&self, id: &str) -> Result<Option<Member>, StoreError>;

    /// The members of an organization, oldest first.
    async fn members(&self, org_id: &str) -> Result<Vec<Member>, StoreError>;

    /// A member's tokens (revoked and expired ones included), oldest first.
    async fn tokens(&self, member_id: &str) -> Result<Vec<Token>, StoreError>;

    async fn token(&self, id: &str) -> Result<Option<Token>, StoreError>;

    /// The principal whose token has hash `token_hash`, if that token is neither revoked nor
    /// expired at `now` (a token with `expires_at <= now` is expired).
    async fn authenticate(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<Principal>, StoreError>;

    /// The principal and console session whose cookie secret hashes to `id_hash`, if the
    /// session is in force at `now` (not ended, `expires_at > now`) and so is its token.
    async fn session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<(Principal, Session)>, StoreError>;

    /// Every signing key, retired ones included, oldest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;

    async fn provider_key(&self, kid: &str) -> Result<Option<ProviderKey>, StoreError>;

    /// An organization's provider keys (revoked ones included), oldest first (`created_at`,
    /// then kid).
    async fn provider_keys(&self, org_id: &str) -> Result<Vec<ProviderKey>, StoreError>;

    /// Every provider key, revoked ones included, oldest first (`created_at`, then kid).
    async fn all_provider_keys(&self) -> Result<Vec<ProviderKey>, StoreError>;
}
