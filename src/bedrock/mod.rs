//! Everything that speaks to AWS for a run: credentials and the client
//! (`auth`), one call and the one reader of SDK errors (`invoker`), the
//! ConverseStream reader (`stream`), CountTokens for a dry-run (`count`),
//! native InvokeModel bodies (`native`), the model-independent request
//! (`request`) and the model ids we know (`catalog`).

pub mod auth;
pub mod catalog;
pub(crate) mod count;
pub(crate) mod invoker;
pub mod native;
pub mod request;
pub(crate) mod stream;
