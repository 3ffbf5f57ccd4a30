//! The identity aggregate's SQL, for every [`Backend`].

use sqlx::{Encode, Executor, Type};

use crate::backend::Affected as _;
use crate::backend::{Backend, Column, Conn, Db, Row};
use crate::error::{DbResult as _, write_error};
use crate::{
    IdentityStore, Member, Organization, Principal, ProviderKey, Session, SigningKey, StoreError,
    Token, Write,
};

const INSERT_ORGANIZATION: &str =
    "INSERT INTO organizations (id, name, kind, created_at) VALUES ($1, $2, $3, $4)";
const INSERT_MEMBER: &str =
    "INSERT INTO members (id, org_id, name, role, created_at) VALUES ($1, $2, $3, $4, $5)";
const INSERT_TOKEN: &str = "INSERT INTO tokens \
     (id, member_id, hash, label, created_at, expires_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const INSERT_SIGNING_KEY: &str = "INSERT INTO signing_keys \
     (kid, public_key, created_at, retired_at) VALUES ($1, $2, $3, $4)";
const INSERT_PROVIDER_KEY: &str = "INSERT INTO provider_keys \
     (kid, org_id, public_key, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)";
const ORGANIZATION: &str = "SELECT id, name, kind, created_at FROM organizations WHERE id = $1";
const ORGANIZATIONS: &str =
    "SELECT id, name, kind, created_at FROM organizations ORDER BY created_at, id";
const ORGANIZATION_COUNT: &str = "SELECT COUNT(*) FROM organizations";
const MEMBER: &str = "SELECT id, org_id, name, role, created_at FROM members WHERE id = $1";
const MEMBERS: &str = "SELECT id, org_id, name, role, created_at FROM members \
     WHERE org_id = $1 ORDER BY created_at, id";
macro_rules! token_columns {
    () => {
        "id, member_id, hash, label, created_at, expires_at, revoked_at"
    };
}
const TOKEN: &str = concat!("SELECT ", token_columns!(), " FROM tokens WHERE id = $1");
const TOKENS: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM tokens WHERE member_id = $1 ORDER BY created_at, id"
);
macro_rules! principal_columns {
    () => {
        "m.id AS m_id, m.org_id AS m_org_id, m.name AS m_name, m.role AS m_role, \
         m.created_at AS m_created_at, \
         o.id AS o_id, o.name AS o_name, o.kind AS o_kind, o.created_at AS o_created_at, \
         t.id AS t_id, t.member_id AS t_member_id, t.hash AS t_hash, t.label AS t_label, \
         t.created_at AS t_created_at, t.expires_at AS t_expires_at, t.revoked_at AS t_revoked_at"
    };
}
/// A token in force at `$2`, with its member and organization.
macro_rules! token_in_force {
    () => {
        " JOIN members m ON m.id = t.member_id \
          JOIN organizations o ON o.id = m.org_id \
          WHERE t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)"
    };
}
const AUTHENTICATE: &str = concat!(
    "SELECT ",
    principal_columns!(),
    " FROM tokens t",
    token_in_force!(),
    " AND t.hash = $1"
);
/// A console session in force at `$2` (not ended, not expired), whose token is in force too.
const SESSION: &str = concat!(
    "SELECT ",
    principal_columns!(),
    ", s.id_hash AS s_id_hash, s.token_id AS s_token_id, s.csrf AS s_csrf, \
     s.created_at AS s_created_at, s.expires_at AS s_expires_at, s.ended_at AS s_ended_at \
     FROM console_sessions s JOIN tokens t ON t.id = s.token_id",
    token_in_force!(),
    " AND s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2"
);
const INSERT_SESSION: &str = "INSERT INTO console_sessions \
     (id_hash, token_id, csrf, created_at, expires_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6)";
const END_SESSION: SetOnce = SetOnce {
    set: "UPDATE console_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL",
    read: "SELECT ended_at FROM console_sessions WHERE id_hash = $1",
    what: "console session",
    done: "ended",
};
const SIGNING_KEYS: &str = "SELECT kid, public_key, created_at, retired_at \
     FROM signing_keys ORDER BY created_at, kid";
macro_rules! provider_key_columns {
    () => {
        "kid, org_id, public_key, created_at, revoked_at"
    };
}
const PROVIDER_KEY: &str = concat!(
    "SELECT ",
    provider_key_columns!(),
    " FROM provider_keys WHERE kid = $1"
);
const PROVIDER_KEYS_OF_ORG: &str = concat!(
    "SELECT ",
    provider_key_columns!(),
    " FROM provider_keys WHERE org_id = $1 ORDER BY created_at, kid"
);
const PROVIDER_KEYS: &str = concat!(
    "SELECT ",
    provider_key_columns!(),
    " FROM provider_keys ORDER BY created_at, kid"
);

/// A timestamp column set once (revoking, retiring): the statement that sets it where it is
/// still NULL, the one that reads it, and what the row is called in errors.
struct SetOnce {
    set: &'static str,
    read: &'static str,
    what: &'static str,
    done: &'static str,
}

const REVOKE_TOKEN: SetOnce = SetOnce {
    set: "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
    read: "SELECT revoked_at FROM tokens WHERE id = $1",
    what: "token",
    done: "revoked",
};
const RETIRE_SIGNING_KEY: SetOnce = SetOnce {
    set: "UPDATE signing_keys SET retired_at = $2 WHERE kid = $1 AND retired_at IS NULL",
    read: "SELECT retired_at FROM signing_keys WHERE kid = $1",
    what: "signing key",
    done: "retired",
};
const REVOKE_PROVIDER_KEY: SetOnce = SetOnce {
    set: "UPDATE provider_keys SET revoked_at = $2 WHERE kid = $1 AND revoked_at IS NULL",
    read: "SELECT revoked_at FROM provider_keys WHERE kid = $1",
    what: "provider key",
    done: "revoked",
};

/// The columns of [`AUTHENTICATE`], one flat row.
#[derive(sqlx::FromRow)]
struct PrincipalRow {
    m_id: String,
    m_org_id: String,
    m_name: String,
    m_role: runpermit_types::Role,
    m_created_at: i64,
    o_id: String,
    o_name: String,
    o_kind: runpermit_types::OrgKind,
    o_created_at: i64,
    t_id: String,
    t_member_id: String,
    t_hash: String,
    t_label: String,
    t_created_at: i64,
    t_expires_at: Option<i64>,
    t_revoked_at: Option<i64>,
}

/// The columns of [`SESSION`]: a principal and its session.
#[derive(sqlx::FromRow)]
struct SessionRow {
    #[sqlx(flatten)]
    principal: PrincipalRow,
    s_id_hash: String,
    s_token_id: String,
    s_csrf: String,
    s_created_at: i64,
    s_expires_at: i64,
    s_ended_at: Option<i64>,
}

impl From<PrincipalRow> for crate::Principal {
    fn from(r: PrincipalRow) -> Self {
        crate::Principal {
            member: crate::Member {
                id: r.m_id,
                org_id: r.m_org_id,
                name: r.m_name,
                role: r.m_role,
                created_at: r.m_created_at,
            },
            org: crate::Organization {
                id: r.o_id,
                name: r.o_name,
                kind: r.o_kind,
                created_at: r.o_created_at,
            },
            token: crate::Token {
                id: r.t_id,
                member_id: r.t_member_id,
                hash: r.t_hash,
                label: r.t_label,
                created_at: r.t_created_at,
                expires_at: r.t_expires_at,
                revoked_at: r.t_revoked_at,
            },
        }
    }
}

/// Applies one identity write inside the batch's transaction.
pub(crate) async fn apply<B: Backend>(conn: &mut Conn<B>, write: &Write) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    Vec<u8>: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    let fail = |e| write_error(write, e);
    match write {
        Write::InsertOrganization(o) => {
            sqlx::query(INSERT_ORGANIZATION)
                .bind(&o.id)
                .bind(&o.name)
                .bind(o.kind.as_str())
                .bind(o.created_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::InsertMember(m) => {
            sqlx::query(INSERT_MEMBER)
                .bind(&m.id)
                .bind(&m.org_id)
                .bind(&m.name)
                .bind(m.role.as_str())
                .bind(m.created_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::InsertToken(t) => {
            sqlx::query(INSERT_TOKEN)
                .bind(&t.id)
                .bind(&t.member_id)
                .bind(&t.hash)
                .bind(&t.label)
                .bind(t.created_at)
                .bind(t.expires_at)
                .bind(t.revoked_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::InsertSigningKey(k) => {
            sqlx::query(INSERT_SIGNING_KEY)
                .bind(&k.kid)
                .bind(&k.public_key)
                .bind(k.created_at)
                .bind(k.retired_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::InsertProviderKey(k) => {
            sqlx::query(INSERT_PROVIDER_KEY)
                .bind(&k.kid)
                .bind(&k.org_id)
                .bind(&k.public_key)
                .bind(k.created_at)
                .bind(k.revoked_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::RevokeToken { id, at } => {
            set_once::<B>(conn, write, &REVOKE_TOKEN, id, *at).await?;
        }
        Write::InsertSession(session) => {
            sqlx::query(INSERT_SESSION)
                .bind(&session.id_hash)
                .bind(&session.token_id)
                .bind(&session.csrf)
                .bind(session.created_at)
                .bind(session.expires_at)
                .bind(session.ended_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::EndSession { id_hash, at } => {
            set_once::<B>(conn, write, &END_SESSION, id_hash, *at).await?;
        }
        Write::RetireSigningKey { kid, at } => {
            set_once::<B>(conn, write, &RETIRE_SIGNING_KEY, kid, *at).await?;
        }
        Write::RevokeProviderKey { kid, at } => {
            set_once::<B>(conn, write, &REVOKE_PROVIDER_KEY, kid, *at).await?;
        }
        other => unreachable!("{} is not an identity write", other.describe()),
    }
    Ok(())
}

/// Applies `write`, which sets the column of `once` to `at` in the row `id`: `NotFound`
/// without that row, `Conflict` when the column is set already.
async fn set_once<B: Backend>(
    conn: &mut Conn<B>,
    write: &Write,
    once: &SetOnce,
    id: &str,
    at: i64,
) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    let done = sqlx::query(once.set)
        .bind(id)
        .bind(at)
        .execute(&mut *conn)
        .await
        .map_err(|e| write_error(write, e))?;
    if done.rows_affected() == 0 {
        let stored: Option<Option<i64>> = sqlx::query_scalar(once.read)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
        let what = once.what;
        return Err(match stored {
            None => StoreError::NotFound(format!("{what} {id:?}")),
            Some(at) => StoreError::Conflict(format!(
                "{what} {id:?} is already {} (at {})",
                once.done,
                at.unwrap_or_default()
            )),
        });
    }
    Ok(())
}

#[async_trait::async_trait]
impl<B: Backend> IdentityStore for B
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    Vec<u8>: Column<Db<B>>,
    for<'a> &'a str: sqlx::ColumnIndex<Row<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    async fn organization(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        sqlx::query_as(ORGANIZATION)
            .bind(id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        sqlx::query_as(ORGANIZATIONS)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn organization_count(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(ORGANIZATION_COUNT)
            .fetch_one(self.connections())
            .await
            .db()
    }

    async fn member(&self, id: &str) -> Result<Option<Member>, StoreError> {
        sqlx::query_as(MEMBER)
            .bind(id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn members(&self, org_id: &str) -> Result<Vec<Member>, StoreError> {
        sqlx::query_as(MEMBERS)
            .bind(org_id)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn tokens(&self, member_id: &str) -> Result<Vec<Token>, StoreError> {
        sqlx::query_as(TOKENS)
            .bind(member_id)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn token(&self, id: &str) -> Result<Option<Token>, StoreError> {
        sqlx::query_as(TOKEN)
            .bind(id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn authenticate(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<Principal>, StoreError> {
        let row: Option<PrincipalRow> = sqlx::query_as(AUTHENTICATE)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(self.connections())
            .await
            .db()?;
        Ok(row.map(Into::into))
    }

    async fn session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<(Principal, Session)>, StoreError> {
        let row: Option<SessionRow> = sqlx::query_as(SESSION)
            .bind(id_hash)
            .bind(now)
            .fetch_optional(self.connections())
            .await
            .db()?;
        Ok(row.map(|r| {
            let session = Session {
                id_hash: r.s_id_hash,
                token_id: r.s_token_id,
                csrf: r.s_csrf,
                created_at: r.s_created_at,
                expires_at: r.s_expires_at,
                ended_at: r.s_ended_at,
            };
            (r.principal.into(), session)
        }))
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        sqlx::query_as(SIGNING_KEYS)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn provider_key(&self, kid: &str) -> Result<Option<ProviderKey>, StoreError> {
        sqlx::query_as(PROVIDER_KEY)
            .bind(kid)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn provider_keys(&self, org_id: &str) -> Result<Vec<ProviderKey>, StoreError> {
        sqlx::query_as(PROVIDER_KEYS_OF_ORG)
            .bind(org_id)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn all_provider_keys(&self) -> Result<Vec<ProviderKey>, StoreError> {
        sqlx::query_as(PROVIDER_KEYS)
            .fetch_all(self.connections())
            .await
            .db()
    }
}
