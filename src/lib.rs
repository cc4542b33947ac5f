//! bedrock-batch: run large batches of prompts through Amazon Bedrock.

pub mod cli;
pub mod native;
pub mod request;
