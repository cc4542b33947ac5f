// Shared test helpers: environment isolation, AWS profile fixtures, SDK clients.
mod util;
// The emulator through the real SDK and boto3: answers, streams, errors, quotas, faults.
mod emulator;
// Credential chains (profile AssumeRole, IMDS) and auth errors against the emulator.
mod iam_flow;
// Running the real binary: workspaces, env isolation, output readers.
mod cli_util;
// `run` end to end: inputs, outputs, limits, setup errors, the IAM flow.
mod pipeline;
// Throughput control against small quotas: no lost rows, bounded 429s, counts that add up.
mod throughput;
