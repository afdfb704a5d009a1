//! [`ResponseFuture`]: the response of [`BearerAuthService`](crate::BearerAuthService).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use actix_web::{Error, body::EitherBody, dev::ServiceResponse};
use futures_util::future::LocalBoxFuture;
use pin_project_lite::pin_project;

/// What the middleware answers with: the wrapped service's body on the left, a
/// rejection's on the right.
type Answer<B> = Result<ServiceResponse<EitherBody<B>>, Error>;

pin_project! {
    /// The response future of [`BearerAuthService`](crate::BearerAuthService).
    ///
    /// When the request was decided in `call` (refused at once, or accepted by a verifier
    /// with its answer at hand, or let through an optional route) it is the rejection or
    /// the wrapped service's own future, with no allocation. When the verifier must be
    /// awaited, it is the rest of the request, boxed as a `LocalBoxFuture`.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Called {
            #[pin]
            future: F,
        },
        Refused {
            response: Option<ServiceResponse<EitherBody<B>>>,
        },
        Verifying {
            future: LocalBoxFuture<'static, Answer<B>>,
        },
    }
}

impl<F, B> ResponseFuture<F, B> {
    /// The wrapped service was called.
    pub(crate) fn called(future: F) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    /// Refused: the rejection's response.
    pub(crate) fn refused(response: ServiceResponse<EitherBody<B>>) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }

    /// The verifier is awaited, then the wrapped service called or the request refused.
    pub(crate) fn verifying(future: LocalBoxFuture<'static, Answer<B>>) -> Self {
        Self {
            state: State::Verifying { future },
        }
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Answer<B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => {
                let response = ready!(future.poll(cx));
                Poll::Ready(response.map(ServiceResponse::map_into_left_body))
            }
            StateProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("`ResponseFuture` polled after completion"),
            },
            StateProj::Verifying { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Refused { .. } => "refused",
            State::Verifying { .. } => "verifying",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
