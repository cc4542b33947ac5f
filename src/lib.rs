//! bedrock-batch: run large batches of prompts through Amazon Bedrock.

pub mod cli;
pub mod emulator;
