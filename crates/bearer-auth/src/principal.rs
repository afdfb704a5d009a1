//! What a verifier hands back for an accepted token.

use std::sync::{Arc, LazyLock};

/// The identity a [`TokenVerifier`](crate::TokenVerifier) returns for an accepted token.
///
/// The adapters put it into the request extensions (hence `Clone + Send + Sync + 'static`)
/// and ask it two questions to apply a route's [`Policy`](crate::Policy). Both have safe
/// defaults, so for most types the implementation is one line:
///
/// ```
/// #[derive(Clone)]
/// struct User {
///     id: u64,
/// }
///
/// impl bearer_auth::Principal for User {}
/// ```
///
/// With the defaults the principal holds no ability (a route that requires one answers
/// 403) and has no second factor pending.
pub trait Principal: Clone + Send + Sync + 'static {
    /// Whether the principal may use `ability`. Defaults to `false`.
    fn has_ability(&self, ability: &str) -> bool {
        let _ = ability;
        false
    }

    /// Whether the token was accepted but its second factor is still pending. Such a
    /// principal is refused with 403 everywhere but on routes that
    /// [accept it](crate::Policy::accept_pending_second_factor). Defaults to `false`.
    fn second_factor_pending(&self) -> bool {
        false
    }
}

macro_rules! plain_principal {
    ($($ty:ty),* $(,)?) => {
        $(
            /// A plain identity: no abilities, no second factor.
            impl Principal for $ty {}
        )*
    };
}

plain_principal!(
    (),
    String,
    Box<str>,
    Arc<str>,
    u32,
    u64,
    u128,
    i32,
    i64,
    i128
);

impl<P: Principal> Principal for Arc<P> {
    fn has_ability(&self, ability: &str) -> bool {
        (**self).has_ability(ability)
    }

    fn second_factor_pending(&self) -> bool {
        (**self).second_factor_pending()
    }
}

/// A token's abilities, as Laravel Sanctum keeps them: a list of names in which `*`
/// grants everything. Cheap to clone (shared).
///
/// ```
/// use bearer_auth::Abilities;
///
/// let abilities = Abilities::new(["servers:read", "servers:write"]);
/// assert!(abilities.can("servers:read"));
/// assert!(!abilities.can("billing:read"));
/// assert!(Abilities::all().can("anything"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Abilities(Names);

/// The names. `["*"]` alone, the default of every key, is held without a list or a
/// reference count: cloning it, as every verification of such a key does, touches no
/// memory shared between threads.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Names {
    /// `["*"]`.
    All,
    /// Any other list, shared.
    List(Arc<[Box<str>]>),
}

impl Abilities {
    /// The given abilities.
    pub fn new<I, S>(abilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        let names: Arc<[Box<str>]> = abilities.into_iter().map(Into::into).collect();
        match &*names {
            [only] if &**only == "*" => Self::all(),
            _ => Self(Names::List(names)),
        }
    }

    /// `["*"]`: every ability (Sanctum's default for a new token). Held without a list
    /// of its own or a reference count.
    pub const fn all() -> Self {
        Self(Names::All)
    }

    /// No ability at all.
    pub fn none() -> Self {
        Self(Names::List(Arc::from([])))
    }

    /// Sanctum's rule: `*` grants every ability, otherwise an exact match is needed.
    pub fn can(&self, ability: &str) -> bool {
        match &self.0 {
            Names::All => true,
            Names::List(names) => names.iter().any(|a| &**a == "*" || &**a == ability),
        }
    }

    /// The ability names, in the order they were given.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        /// The names of [`Names::All`], made once, on the first call that needs them.
        static STAR: LazyLock<[Box<str>; 1]> = LazyLock::new(|| ["*".into()]);
        let names: &[Box<str>] = match &self.0 {
            Names::All => &*STAR,
            Names::List(names) => names,
        };
        names.iter().map(|a| &**a)
    }

    /// How many names there are.
    pub fn len(&self) -> usize {
        match &self.0 {
            Names::All => 1,
            Names::List(names) => names.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Abilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: Into<Box<str>>> FromIterator<S> for Abilities {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self::new(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iter_gives_the_names_and_their_exact_count() {
        let all = Abilities::all();
        let mut names = all.iter();
        assert_eq!(names.len(), 1);
        assert_eq!(names.next(), Some("*"));
        assert_eq!((names.len(), names.next()), (0, None));
        assert_eq!(Abilities::new(["*"]).iter().collect::<Vec<_>>(), ["*"]);
        assert_eq!(Abilities::none().iter().len(), 0);
        let list = Abilities::new(["a", "b", "*"]);
        let mut names = list.iter();
        assert_eq!(names.len(), 3);
        assert_eq!(names.next(), Some("a"));
        assert_eq!(names.len(), 2);
        assert_eq!(names.collect::<Vec<_>>(), ["b", "*"]);
    }

    #[test]
    fn wildcard_grants_everything() {
        assert!(Abilities::new(["read", "*"]).can("write"));
    }

    #[test]
    fn exact_match_only() {
        let a = Abilities::new(["servers:read"]);
        assert!(a.can("servers:read"));
        assert!(!a.can("servers"));
        assert!(!a.can("servers:read:all"));
        assert!(!a.can("SERVERS:READ"));
    }

    #[test]
    fn none_grants_nothing() {
        assert!(!Abilities::none().can("*"));
        assert!(Abilities::none().is_empty());
    }

    #[test]
    fn defaults_deny_abilities_and_have_no_pending_factor() {
        assert!(!"user".to_owned().has_ability("*"));
        assert!(!7_u64.second_factor_pending());
    }

    #[derive(Clone)]
    struct Admin {
        pending: bool,
    }

    impl Principal for Admin {
        fn has_ability(&self, ability: &str) -> bool {
            ability == "admin"
        }
        fn second_factor_pending(&self) -> bool {
            self.pending
        }
    }

    #[test]
    fn an_arc_answers_as_the_principal_it_holds() {
        for pending in [false, true] {
            let shared = Arc::new(Admin { pending });
            assert!(shared.has_ability("admin"));
            assert!(!shared.has_ability("billing"));
            assert_eq!(shared.second_factor_pending(), pending);
        }
    }

    #[test]
    fn len_and_is_empty_count_the_names() {
        let two = Abilities::new(["a", "b"]);
        assert_eq!(two.len(), 2);
        assert!(!two.is_empty());
        assert_eq!(two.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(Abilities::all().len(), 1);
        assert_eq!(Abilities::none().len(), 0);
        assert!(!Abilities::all().is_empty());
    }

    #[test]
    fn every_ability_is_one_star_however_made() {
        let made = Abilities::new(["*"]);
        assert_eq!(made, Abilities::all());
        assert_eq!(Abilities::all().iter().collect::<Vec<_>>(), ["*"]);
        assert_eq!(Abilities::all().len(), 1);
        assert!(!Abilities::all().is_empty());
        assert_eq!(format!("{:?}", Abilities::all()), r#"["*"]"#);
        // A longer list holding `*` grants everything too, and keeps its names.
        let both = Abilities::new(["read", "*"]);
        assert_ne!(both, Abilities::all());
        assert_eq!(both.iter().collect::<Vec<_>>(), ["read", "*"]);
        assert!(both.can("write"));
    }

    #[test]
    fn debug_lists_names() {
        assert_eq!(format!("{:?}", Abilities::new(["a", "b"])), r#"["a", "b"]"#);
    }
}
