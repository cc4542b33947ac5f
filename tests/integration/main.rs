// Shared test helpers: environment isolation, AWS profile fixtures, SDK clients.
mod util;
// The emulator through the real SDK and boto3: answers, streams, errors, quotas, faults.
mod emulator;
// The emulator's S3 (s3s) through the real aws-sdk-s3: multipart, listing, the direct store, auth.
mod emulator_s3;
// `run` with s3:// inputs and --upload: streamed reads, missing objects, changed objects, uploads.
mod s3_run;
// Credential chains (profile AssumeRole, IMDS) and auth errors against the emulator.
mod iam_flow;
// Running the real binary: workspaces, env isolation, output readers, background runs and signals,
// the shared "every id once" and "paid once" checks.
mod cli_util;
// `run` end to end: inputs, outputs, limits, setup errors, the IAM flow.
mod pipeline;
// The shipped files as fixtures: demo, config.toml, samples/.
mod samples;
// Credentials during `run`: profile, --role-arn, IMDS, expiry and renewal, denied models, no leaks.
mod credentials;
// `whoami` (every credential source, every exit-2 case) and `policy` (against the library).
mod iam_commands;
// The bad-input corpus in tests/data: per-row failures or setup errors, no row lost.
mod bad_input;
// Resume into the same output directory: skip done ids, refuse another job, --fresh, --retry-failures, torn lines.
mod resume;
// SIGINT/SIGTERM, a second signal, the grace period and kill -9, each followed by a resume.
mod shutdown;
// The breaker: a job that cannot succeed stops early; a rerun after the fix sends what is missing.
mod breaker;
// Throughput control against small quotas: no lost rows, bounded 429s, counts that add up.
mod throughput;
// Money: cost per row and in the summary, the budget, service tiers, prompt caching, --dry-run.
mod cost;
// Headless Chromium over the DevTools protocol, for tests that look at a page.
mod browser;
// The HTML report in a real browser, `report -o`, `report --compare`, and run's closing table.
mod report;
// One run per output directory: a second run is refused while the first holds the lock.
mod lock;
// A prompt edited under the same id: fingerprints, --on-changed refuse/keep/resend.
mod changed;
// Properties of resume: random kills, torn lines and faults never lose or double a row.
mod properties;
// `stream = true`: time to first token, in-stream exceptions judged like HTTP ones, cut streams retried whole.
mod stream;
// `export`: an output directory as one table in input order, from a real run.
mod export;
// Structured output and scoring: schema routes, invalid output, [[score]], id_columns, a judge job.
mod eval;
// Several models and samples in one job: every unit once, resume, a grown or shrunk matrix, per-model quotas.
mod matrix;
// The emulator's Batch Inference control plane through aws-sdk-bedrock: jobs, outputs, quotas, idempotency.
mod invocation_jobs;
// submit and collect end to end: splitting, crashes, partial completion + replay, odd ids, --no-wait.
mod submit;
