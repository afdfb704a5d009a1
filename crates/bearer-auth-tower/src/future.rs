//! [`ResponseFuture`]: the response of [`BearerAuthService`](crate::BearerAuthService).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bearer_auth::{Authenticator, Rejection, TokenVerifier};
use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::outcome::{Outcome, admit};

/// The token's verification and policy check, owning what it needs. Boxed because it
/// borrows the authenticator and the token it owns; the verifier's own future is boxed
/// by `async-trait` inside it.
pub(crate) type VerifyFuture<P> = Pin<Box<dyn Future<Output = Result<P, Rejection>> + Send>>;

type Principal<V> = <V as TokenVerifier>::Principal;

pin_project! {
    /// The response future of [`BearerAuthService`](crate::BearerAuthService).
    ///
    /// It resolves at once to the rejection when the request's credentials could be
    /// refused without the verifier; otherwise it awaits the verifier, then either
    /// resolves to the rejection or calls the inner service and resolves to its
    /// response.
    pub struct ResponseFuture<S, ReqBody, V>
    where
        S: Service<Request<ReqBody>>,
        V: TokenVerifier,
    {
        #[pin]
        state: State<S, ReqBody, V>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateOwned]
    enum State<S, ReqBody, V>
    where
        S: Service<Request<ReqBody>>,
        V: TokenVerifier,
    {
        Verifying {
            verify: VerifyFuture<Principal<V>>,
            request: Request<ReqBody>,
            inner: S,
            auth: Arc<Authenticator<V>>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Rejected {
            response: S::Response,
        },
        Done,
    }
}

impl<S, ReqBody, V> ResponseFuture<S, ReqBody, V>
where
    S: Service<Request<ReqBody>>,
    V: TokenVerifier,
{
    pub(crate) fn verifying(
        verify: VerifyFuture<Principal<V>>,
        request: Request<ReqBody>,
        inner: S,
        auth: Arc<Authenticator<V>>,
    ) -> Self {
        Self {
            state: State::Verifying {
                verify,
                request,
                inner,
                auth,
            },
        }
    }

    pub(crate) fn called(future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
        }
    }

    pub(crate) fn rejected(response: S::Response) -> Self {
        Self {
            state: State::Rejected { response },
        }
    }
}

impl<S, ReqBody, ResBody, V> Future for ResponseFuture<S, ReqBody, V>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    V: TokenVerifier,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Verifying { verify, .. } => {
                    let outcome = ready!(verify.as_mut().poll(cx));
                    let StateOwned::Verifying {
                        mut request,
                        mut inner,
                        auth,
                        ..
                    } = state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("the state was `Verifying` a moment ago")
                    };
                    match outcome {
                        Ok(principal) => {
                            admit(&mut request, Outcome::Accepted(principal));
                            let future = inner.call(request);
                            state.set(State::Calling { future });
                        }
                        Err(rejection) => return Poll::Ready(Ok(auth.respond(&rejection))),
                    }
                }
                StateProj::Rejected { .. } => {
                    if let StateOwned::Rejected { response } =
                        state.as_mut().project_replace(State::Done)
                    {
                        return Poll::Ready(Ok(response));
                    }
                }
                StateProj::Done => panic!("`ResponseFuture` polled after completion"),
            }
        }
    }
}

impl<S, ReqBody, V> fmt::Debug for ResponseFuture<S, ReqBody, V>
where
    S: Service<Request<ReqBody>>,
    V: TokenVerifier,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Verifying { .. } => "verifying",
            State::Calling { .. } => "calling",
            State::Rejected { .. } => "rejected",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, future::Ready};

    use bearer_auth::{BearerToken, InvalidReason, UNAUTHENTICATED_BODY, verifier_fn};
    use http::{HeaderValue, header::AUTHORIZATION};
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::BearerAuthLayer;

    type Inner =
        tower::util::ServiceFn<fn(Request<()>) -> Ready<Result<Response<Bytes>, Infallible>>>;

    fn inner() -> Inner {
        service_fn(|_| std::future::ready(Ok(Response::new(Bytes::from_static(b"inner")))))
    }

    #[test]
    fn rejected_future_is_ready_at_once_and_says_so_in_debug() {
        let future: ResponseFuture<Inner, (), bearer_auth::MemoryStore> =
            ResponseFuture::rejected(Response::new(Bytes::from_static(UNAUTHENTICATED_BODY)));
        assert_eq!(
            format!("{future:?}"),
            r#"ResponseFuture { state: "rejected" }"#
        );
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => {
                assert_eq!(response.body().as_ref(), UNAUTHENTICATED_BODY);
            }
            other => panic!("expected the rejection, got {other:?}"),
        }
        assert_eq!(format!("{future:?}"), r#"ResponseFuture { state: "done" }"#);
    }

    #[tokio::test]
    async fn verifying_future_waits_for_the_verifier() {
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(Some(wait)));
        let verifier = verifier_fn(move |token: BearerToken| {
            let wait = wait.lock().unwrap().take();
            async move {
                if let Some(wait) = wait {
                    let _ = wait.await;
                }
                match token.as_str() {
                    "good" => Ok(1_u64),
                    _ => Err(Rejection::InvalidToken(InvalidReason::Unknown)),
                }
            }
        });
        let mut service = BearerAuthLayer::new(verifier).layer(inner());
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_static("Bearer good"));
        let future = service.ready().await.unwrap().call(request);
        assert_eq!(
            format!("{future:?}"),
            r#"ResponseFuture { state: "verifying" }"#
        );
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        release.send(()).unwrap();
        let response = future.await.unwrap();
        assert_eq!(response.body().as_ref(), b"inner");
    }
}
