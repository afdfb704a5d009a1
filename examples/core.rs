//! The core crate alone: issue a key, then check request headers against it.
//!
//! `cargo run --example core`

use bearer_auth::{Authenticator, MemoryStore, NewToken};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::<String>::new();
    let issued = store.create(NewToken::new("alice".to_owned(), "example"))?;
    println!("API key: {}", issued.plain_text_token().as_str());

    let auth = Authenticator::new(store);
    let good = format!("Bearer {}", issued.plain_text_token().as_str());
    for (shown, header) in [
        ("Bearer <the key above>", good.as_str()),
        ("Bearer 1|wrong", "Bearer 1|wrong"),
        ("Basic dXNlcjpwYXNz", "Basic dXNlcjpwYXNz"),
    ] {
        match auth.authenticate([header.as_bytes()]).await {
            Ok(Some(principal)) => println!("{shown:<24} -> 200, owner {}", principal.owner()),
            Ok(None) => println!("{shown:<24} -> no credentials"),
            Err(rejection) => println!(
                "{shown:<24} -> {} {}",
                rejection.status().as_u16(),
                String::from_utf8_lossy(rejection.body())
            ),
        }
    }
    Ok(())
}
