//! Everything that speaks to AWS for a run: credentials and the client
//! (`auth`), one call and the one reader of SDK errors (`invoker`), CountTokens
//! for a dry-run (`count`), native
//! InvokeModel bodies (`native`) and the model-independent request (`request`).

pub mod auth;
pub(crate) mod count;
pub(crate) mod invoker;
pub mod native;
pub mod request;
