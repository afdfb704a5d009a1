//! account_api (work in progress)
pub mod crypto;
pub mod db;
pub mod errors;
pub mod input;
pub mod throttle;
pub mod two_factor;
pub mod users;
