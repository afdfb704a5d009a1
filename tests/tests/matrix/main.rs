//! The cross-adapter matrix: every request of [`cases::cases`] is sent as raw bytes over
//! TCP to an axum server (`bearer-auth-tower`) and an actix-web server
//! (`bearer-auth-actix`), both started here on `127.0.0.1:0` with the same verifier, keys,
//! routes and handlers. Each answer's status, `Content-Type`, `WWW-Authenticate` and body
//! bytes must match the expected table, and the two servers must answer alike except
//! where the table records that one server's HTTP layer answers by itself (and why).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;
mod fixture;
mod servers;
mod wire;

use std::fmt::Write as _;

use cases::{Case, Expect, cases};
use fixture::Keys;
use servers::{Actix, Server, start_axum};
use wire::{Reply, exchange};

/// The matrix holds at least this many cases.
const MIN_CASES: usize = 80;

/// One case's outcome on both servers.
struct Outcome<'a> {
    case: &'a Case,
    axum: Reply,
    actix: Reply,
}

impl Outcome<'_> {
    fn reply(&self, server: Server) -> &Reply {
        match server {
            Server::Axum => &self.axum,
            Server::Actix => &self.actix,
        }
    }

    /// What is wrong with this outcome, if anything.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for server in [Server::Axum, Server::Actix] {
            let expected = self.case.expect_for(server).reply();
            let got = self.reply(server);
            if *got != expected {
                problems.push(format!("{server}: expected {expected:?}, got {got:?}"));
            }
        }
        // Unless the table says one server answers by itself, the two must agree.
        if self.case.overrides.is_empty() && self.axum != self.actix {
            problems.push(format!(
                "the servers disagree: axum {:?}, actix {:?}",
                self.axum, self.actix
            ));
        }
        problems
    }
}

fn label(reply: &Reply) -> String {
    match reply {
        Reply::Response(answer) => {
            let mut label = answer.status.to_string();
            if let Some(www) = answer.www_authenticate.first() {
                let _ = write!(label, " {}", wire::show(www));
            }
            label
        }
        other => format!("{other:?}"),
    }
}

/// The table printed when a case fails: every case, both answers, and the reasons of
/// the server-side answers.
fn summary(outcomes: &[Outcome<'_>]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<4} {:<52} {:<22} {:<36} {:<36}",
        "ok", "case", "expected", "axum", "actix"
    );
    for outcome in outcomes {
        let ok = if outcome.problems().is_empty() {
            "ok"
        } else {
            "FAIL"
        };
        let _ = writeln!(
            out,
            "{ok:<4} {:<52} {:<22} {:<36} {:<36}",
            outcome.case.name,
            outcome.case.expect.label(),
            label(&outcome.axum),
            label(&outcome.actix),
        );
    }
    let _ = writeln!(
        out,
        "\nanswered by the HTTP server itself, before any middleware:"
    );
    for outcome in outcomes {
        for server in [Server::Axum, Server::Actix] {
            if let Expect::Server(status, why) = outcome.case.expect_for(server) {
                let _ = writeln!(out, "  {} / {server} / {status}: {why}", outcome.case.name);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_adapters_answer_every_case_as_the_table_says() {
    let keys = Keys::new();
    let table = cases(&keys);
    assert!(table.len() >= MIN_CASES, "only {} cases", table.len());

    let axum = start_axum(keys.verifier()).await;
    let actix = Actix::start(keys.verifier()).await;

    let mut outcomes = Vec::with_capacity(table.len());
    for case in &table {
        let (axum_reply, actix_reply) = tokio::join!(
            exchange(axum, &case.request),
            exchange(actix.addr, &case.request)
        );
        outcomes.push(Outcome {
            case,
            axum: axum_reply,
            actix: actix_reply,
        });
    }
    actix.stop().await;
    println!(
        "{} cases, {} with a per-server answer",
        table.len(),
        table.iter().filter(|c| !c.overrides.is_empty()).count()
    );

    let failures: Vec<String> = outcomes
        .iter()
        .flat_map(|o| {
            o.problems()
                .into_iter()
                .map(|p| format!("{}: {p}", o.case.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\n\n{}",
        outcomes.iter().filter(|o| !o.problems().is_empty()).count(),
        outcomes.len(),
        failures.join("\n"),
        summary(&outcomes)
    );
}

/// Every case with a per-server answer says why, and it is about the HTTP layer: the
/// middleware itself must answer both servers alike.
#[test]
fn every_override_is_a_server_answer_with_a_reason() {
    let keys = Keys::new();
    for case in cases(&keys) {
        for o in &case.overrides {
            match &o.expect {
                Expect::Server(_, reason) => assert!(!reason.is_empty(), "{}", case.name),
                other => panic!("{}: override {other:?} is not a server answer", case.name),
            }
        }
    }
}

/// Between the head sizes a server always reads and those it never reads, whether it
/// answers 431 depends on how the bytes arrive (how much one read brings): the only
/// answers allowed there are the middleware's 401 and the server's 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_between_a_servers_limits_get_the_401_or_a_431() {
    let keys = Keys::new();
    let axum = start_axum(keys.verifier()).await;
    let actix = Actix::start(keys.verifier()).await;
    let invalid = Expect::Refused(cases::Refusal::Invalid).reply();
    let too_large = Expect::Server(431, "").reply();
    let zones = [
        (
            Server::Actix,
            actix.addr,
            cases::ACTIX_HEAD_ALWAYS_READ,
            cases::ACTIX_HEAD_NEVER_READ,
        ),
        (
            Server::Axum,
            axum,
            cases::HYPER_HEAD_ALWAYS_READ,
            cases::HYPER_HEAD_NEVER_READ,
        ),
    ];
    for (server, addr, always, never) in zones {
        for size in [always + 1, (always + never) / 2, never - 1] {
            let reply = exchange(addr, &cases::head_of(size)).await;
            println!("{server}, head of {size} bytes: {}", label(&reply));
            assert!(
                reply == invalid || reply == too_large,
                "{server}, head of {size} bytes: {reply:?}"
            );
        }
    }
    actix.stop().await;
}
