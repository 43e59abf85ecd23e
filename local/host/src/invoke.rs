//! A Lambda invocation as Lambda sees it: a JSON event in, a JSON response or an error
//! out. Event source emulation talks to functions only through this, so the same code
//! drives an in-process handler in a test or a real `bootstrap` process in the host.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

/// Lambda's `errorType` for an invocation stopped at its timeout.
pub const TIMED_OUT: &str = "Sandbox.Timedout";

/// The function reported an error (Lambda's "Unhandled" function error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct InvokeError {
    /// Lambda's `errorType`, e.g. `Runtime.ExitError` or the handler's error type.
    pub error_type: String,
    /// Lambda's `errorMessage`.
    pub message: String,
}

impl InvokeError {
    /// An error of a type with a message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
        }
    }
}

/// The future an invocation returns.
pub type InvokeFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, InvokeError>> + Send + 'a>>;

/// Something that can be invoked like a Lambda function.
pub trait Invoke: Send + Sync {
    /// Invokes once with `event`.
    fn invoke(&self, event: Value) -> InvokeFuture<'_>;
}

/// An [`Invoke`] made from an async closure.
pub struct FnInvoke<F>(F);

/// Wraps an async closure `Fn(Value) -> Future<Output = Result<Value, InvokeError>>`.
pub fn from_fn<F, Fut>(f: F) -> FnInvoke<F>
where
    F: Fn(Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, InvokeError>> + Send + 'static,
{
    FnInvoke(f)
}

impl<F, Fut> Invoke for FnInvoke<F>
where
    F: Fn(Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, InvokeError>> + Send + 'static,
{
    fn invoke(&self, event: Value) -> InvokeFuture<'_> {
        Box::pin((self.0)(event))
    }
}
