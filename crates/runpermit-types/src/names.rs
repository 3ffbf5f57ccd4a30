//! Closed sets of names: each enum of this crate is written in JSON, the store, the audit trail
//! and the CLI as the same snake_case text, and read back only through [`FromStr`], which names
//! what it accepts.
//!
//! [`FromStr`]: std::str::FromStr

/// `name` with its indefinite article, for messages people read: "an applicant", "an
/// evaluator organization", "a draft".
pub fn with_article(name: &str) -> String {
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// The text is not one of the names of a closed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {text:?}: expected one of {expected}")]
pub struct UnknownName {
    /// What was expected (`run status`).
    pub kind: &'static str,
    /// What was given.
    pub text: String,
    /// The accepted names, comma-separated.
    pub expected: String,
}

/// Declares a closed set of names: the enum with serde's snake_case names, `ALL`, `as_str`,
/// `Display`, `FromStr` (failing with [`UnknownName`]) and `TryFrom<String>` (for store rows).
macro_rules! names {
    (
        $(#[$meta:meta])*
        $vis:vis enum $ty:ident ($kind:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        $vis enum $ty {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The snake_case name used in JSON, the store, the audit trail and the CLI.
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    $crate::names::UnknownName {
                        kind: $kind,
                        text: s.to_owned(),
                        expected: $ty::ALL
                            .iter()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::names::UnknownName;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $crate::names::UnknownName;

            fn try_from(s: &str) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$ty> for &'static str {
            fn from(v: $ty) -> &'static str {
                v.as_str()
            }
        }

        #[cfg(feature = "sqlx")]
        impl<DB: sqlx::Database> sqlx::Type<DB> for $ty
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $ty
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <String as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(text.parse::<$ty>()?)
            }
        }
    };
}

pub(crate) use names;

#[cfg(test)]
mod tests {
    use super::with_article;

    #[test]
    fn articles_follow_the_sound_of_the_first_letter() {
        assert_eq!(with_article("applicant"), "an applicant");
        assert_eq!(with_article("evaluator"), "an evaluator");
        assert_eq!(with_article("draft"), "a draft");
        assert_eq!(with_article("provider"), "a provider");
    }
}
