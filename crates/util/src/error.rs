//! What the library crates' error enums share: a `Context` trait that adds
//! what was being done to an error (or turns a missing value into one), as
//! `anyhow::Context` does, and `bail!`/`ensure!`/`invalid!` macros that
//! build the crate's message variant. [`error_context!`] writes them for an
//! enum with the variants `Invalid(String)` and `Context { context, source }`,
//! so that each crate keeps its own error type (no `anyhow` in a library).

/// `error` and its sources, joined by ": " (what `anyhow` prints for `{:#}`).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Writes, in the calling module (`$module`, its path from the crate root),
/// a `Context` trait for `$error` (on `Result<T, E: Into<$error>>` and
/// `Option<T>`), a `Result` alias, and the `invalid!`, `bail!` and `ensure!`
/// macros that build `$error::Invalid`.
/// It also writes `$error::context`, which wraps an error in what was being
/// done. `$error` needs the variants `Invalid(String)` and
/// `Context { context: String, source: Box<$error> }`.
#[macro_export]
macro_rules! error_context {
    ($error:ident in $($module:ident)::+) => {
        $crate::error_context!(@with ($) $error in $($module)::+);
    };
    (@with ($d:tt) $error:ident in $($module:ident)::+) => {
        /// This crate's result.
        pub type Result<T, E = $error> = std::result::Result<T, E>;

        impl $error {
            /// `self` under what was being done.
            pub fn context(self, context: impl std::fmt::Display) -> $error {
                $error::Context { context: context.to_string(), source: Box::new(self) }
            }
        }

        /// Adds what was being done to an error (or turns a missing value
        /// into one), as `anyhow::Context` does.
        pub trait Context<T> {
            /// The error (or the missing value) under `context`.
            fn context(self, context: impl std::fmt::Display) -> Result<T>;
            /// The error (or the missing value) under the context `f` makes.
            fn with_context<C: std::fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T>;
        }

        impl<T, E: Into<$error>> Context<T> for std::result::Result<T, E> {
            fn context(self, context: impl std::fmt::Display) -> Result<T> {
                self.map_err(|e| e.into().context(context))
            }

            fn with_context<C: std::fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T> {
                self.map_err(|e| e.into().context(f()))
            }
        }

        impl<T> Context<T> for Option<T> {
            fn context(self, context: impl std::fmt::Display) -> Result<T> {
                self.ok_or_else(|| $error::Invalid(context.to_string()))
            }

            fn with_context<C: std::fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T> {
                self.ok_or_else(|| $error::Invalid(f().to_string()))
            }
        }

        /// An `Invalid` error with a formatted message.
        #[allow(unused_macros)]
        macro_rules! invalid {
            ($d($d message:tt)*) => {
                $($module)::+::$error::Invalid(format!($d($d message)*))
            };
        }

        /// Returns an `Invalid` error with a formatted message.
        #[allow(unused_macros)]
        macro_rules! bail {
            ($d($d message:tt)*) => {
                return Err($($module)::+::invalid!($d($d message)*).into())
            };
        }

        /// Returns an `Invalid` error unless `condition` holds.
        #[allow(unused_macros)]
        macro_rules! ensure {
            ($d condition:expr, $d($d message:tt)*) => {
                if !$d condition {
                    $($module)::+::bail!($d($d message)*);
                }
            };
        }

        #[allow(unused_imports)]
        pub(crate) use {bail, ensure, invalid};
    };
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    pub enum Demo {
        #[error("{0}")]
        Invalid(String),
        #[error(transparent)]
        Io(#[from] std::io::Error),
        #[error("{context}")]
        Context {
            context: String,
            #[source]
            source: Box<Demo>,
        },
    }

    crate::error_context!(Demo in crate::error::tests);

    #[test]
    fn context_chains_like_anyhow() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = Err::<(), _>(io).context("reading x.csv").unwrap_err();
        assert_eq!(e.to_string(), "reading x.csv");
        assert_eq!(super::chain(&e), "reading x.csv: No such file or directory");
    }

    #[test]
    fn a_missing_value_is_invalid() {
        let e = None::<u8>.with_context(|| "data.path is not set").unwrap_err();
        assert!(matches!(e, Demo::Invalid(m) if m == "data.path is not set"));
    }

    fn positive(x: i64) -> Result<i64> {
        ensure!(x != 0, "x is zero");
        if x < 0 {
            bail!("x = {x} is negative");
        }
        Ok(x)
    }

    #[test]
    fn bail_and_ensure_build_invalid() {
        assert_eq!(positive(-2).unwrap_err().to_string(), "x = -2 is negative");
        assert!(matches!(positive(0), Err(Demo::Invalid(m)) if m == "x is zero"));
        assert_eq!(positive(3).unwrap(), 3);
    }
}
