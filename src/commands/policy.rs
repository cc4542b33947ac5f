//! IAM documents for running a job: the least-privilege identity policy for the
//! models it calls, and the trust policy of the role it runs under.
//!
//! This module is pure: it builds `serde_json::Value`s from model ids, ARNs and
//! a region, and never talks to AWS. It therefore knows only what AWS documents
//! statically (which Regions a cross-Region inference profile can route to), not
//! what a given account can see; `bedrock-batch policy` prints what it returns.
//!
//! How a model id turns into resources:
//!
//! | model                                   | resources granted                                                  |
//! |-----------------------------------------|--------------------------------------------------------------------|
//! | `anthropic.claude-3-haiku-20240307-v1:0` | the foundation model in the job's Region                           |
//! | `apac.…`, `us.…`, `eu.…`, `jp.…`, …      | the profile, plus the foundation model in every destination Region |
//! | `global.…`                               | the profile, the model in the job's Region, the Region-less model  |
//! | a Bedrock ARN                            | that ARN, unchanged                                                |

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::bedrock::catalog::PROVIDERS;

/// The two runtime actions a batch job needs: `run` calls Converse /
/// ConverseStream, which IAM authorizes as these.
const INVOKE_ACTIONS: [&str; 2] = [
    "bedrock:InvokeModel",
    "bedrock:InvokeModelWithResponseStream",
];

/// Destination Regions of each geographic cross-Region inference profile prefix.
///
/// Source: the per-profile "source Region → destination Regions" tables in
/// "Supported Regions and models for inference profiles",
/// <https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html>
/// (read November 2026; AWS now also lists them on each model's card). Each row
/// here is the union of the destination Regions of every profile AWS lists for
/// that prefix, from any source Region, so one policy covers every model in the
/// geography. A few Regions are a destination only when they are also the
/// source (`ca-central-1` for `us.`, `il-central-1` for `eu.`, `me-central-1`
/// for `apac.`); the extra grants are harmless because those statements only
/// apply through our own profile (see `invoke_policy`).
///
/// AWS says a geographic profile's destination list never changes, but it adds
/// new profiles (for new models) that reach new Regions, so this union grows
/// over time: when a job gets `AccessDenied` through a profile, compare this
/// table with the docs (or with `aws bedrock get-inference-profile`, whose
/// `models` field lists one ARN per destination Region).
const GEOGRAPHIES: &[(&str, &[&str])] = &[
    (
        "apac",
        &[
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-7",
            "me-central-1",
        ],
    ),
    ("au", &["ap-southeast-2", "ap-southeast-4"]),
    ("ca", &["ca-central-1", "ca-west-1"]),
    (
        "eu",
        &[
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
        ],
    ),
    ("jp", &["ap-northeast-1", "ap-northeast-3"]),
    (
        "us",
        &[
            "ca-central-1",
            "ca-west-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ],
    ),
    ("us-gov", &["us-gov-east-1", "us-gov-west-1"]),
];

/// The prefix of global cross-Region inference profiles, which can route to any
/// commercial Region.
const GLOBAL: &str = "global";

/// Bedrock resource types a runtime `modelId` ARN can name; all are passed
/// through unchanged.
const ARN_RESOURCE_TYPES: &[&str] = &[
    "foundation-model",
    "inference-profile",
    "application-inference-profile",
    "provisioned-model",
    "imported-model",
    "custom-model-deployment",
    "prompt-router",
    "default-prompt-router",
];

/// Why a policy could not be built. Messages name the offending input first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `invoke_policy` was given no models.
    #[error("no models given: name at least one model id, inference profile id or ARN")]
    NoModels,
    /// The Region is not a Region code.
    #[error("region `{region}`: expected a Region code like `ap-northeast-2`")]
    BadRegion { region: String },
    /// The account is not a 12-digit account id.
    #[error("account `{account}`: expected a 12-digit AWS account id")]
    BadAccount { account: String },
    /// A model id has characters or a shape Bedrock ids never have.
    #[error("model `{model}`: {reason}")]
    BadModelId { model: String, reason: String },
    /// A model given as an ARN does not parse as a Bedrock model ARN.
    #[error("model `{model}`: malformed ARN: {reason}")]
    MalformedArn { model: String, reason: String },
    /// A profile id starts with a prefix that is not a known geography.
    #[error(
        "model `{model}`: unknown cross-Region inference prefix `{prefix}.` \
         (known: apac, au, ca, eu, global, jp, us, us-gov)"
    )]
    UnknownGeography { model: String, prefix: String },
    /// A profile that does not exist in the Region's partition, like a `us-gov.`
    /// profile outside GovCloud or a `global.` profile inside it.
    #[error("model `{model}`: this inference profile can't be called from region `{region}`")]
    WrongPartition { model: String, region: String },
    /// `trust_policy` was given no principals.
    #[error("no user ARNs given: name at least one IAM user or role that may assume the role")]
    NoPrincipals,
    /// A principal is not an IAM user, role or account-root ARN.
    #[error("user ARN `{arn}`: {reason}")]
    BadPrincipal { arn: String, reason: String },
}

/// The identity policy that lets a role invoke exactly `models` from `region`.
///
/// `models` are what a job passes as `modelId`: foundation model ids, geographic
/// or global cross-Region inference profile ids, or Bedrock ARNs. `account`
/// fills the account field of inference profile ARNs; `None` writes `*`.
///
/// The first statement, `BedrockBatchInvoke`, allows `bedrock:InvokeModel` and
/// `bedrock:InvokeModelWithResponseStream` on foundation models named directly,
/// on ARNs given as-is and on geographic profiles. Profiles need more, because
/// Bedrock authorizes a request sent through a profile again against the
/// foundation model in the Region that serves it; these statements follow the
/// policies AWS documents for that:
///
/// - `BedrockBatchViaGeoProfile`: the foundation model behind each geographic
///   profile in every destination Region of its geography (`GEOGRAPHIES`) and
///   in `region`, only when the request comes through one of these profiles
///   (`bedrock:InferenceProfileArn`). Source: "IAM policy requirements for
///   Geographic cross-Region inference",
///   <https://docs.aws.amazon.com/bedrock/latest/userguide/geographic-cross-region-inference.html>.
/// - `BedrockBatchGlobalProfile`, `BedrockBatchGlobalProfileSourceModel` and
///   `BedrockBatchGlobalProfileGlobalModel`: the three parts AWS requires for a
///   `global.` profile: the profile in `region`, the foundation model in
///   `region`, and the Region-less foundation model
///   `arn:aws:bedrock:::foundation-model/ID`, for which Bedrock sets
///   `aws:RequestedRegion` to `unspecified`. Source: "IAM policy requirements
///   for global cross-Region inference",
///   <https://docs.aws.amazon.com/bedrock/latest/userguide/global-cross-region-inference.html>.
///
/// One statement serves all profiles of a kind, with every profile ARN in the
/// condition. That grants no more than a statement per profile would: a profile
/// only ever routes to its own model, so model X is never evaluated with
/// profile Y's ARN.
///
/// Not expanded: ARNs are granted as given. An `inference-profile` or
/// `application-inference-profile` ARN also needs the foundation models it
/// routes to (pass the system profile's id instead of its ARN, or add those
/// models' ARNs yourself), and a `provisioned-model`, `imported-model` or
/// prompt-router ARN is granted without whatever it refers to.
///
/// Resources are deduplicated and sorted, so the output is the same for the
/// same set of models in any order.
pub fn invoke_policy(
    models: &[String],
    region: &str,
    account: Option<&str>,
) -> Result<Value, PolicyError> {
    if models.is_empty() {
        return Err(PolicyError::NoModels);
    }
    if !is_region(region) {
        return Err(PolicyError::BadRegion {
            region: region.to_owned(),
        });
    }
    let account = match account {
        None => "*",
        Some(account) if is_account(account) => account,
        Some(account) => {
            return Err(PolicyError::BadAccount {
                account: account.to_owned(),
            })
        }
    };
    let mut grants = Grants::default();
    for model in models {
        grants.add(model, region, account)?;
    }
    Ok(grants.into_policy(region, account == "*"))
}

/// The trust policy of the job's role: EC2 (for an instance profile) and the
/// given IAM users or roles (for `AssumeRole` from a developer's machine) may
/// assume it.
///
/// The guide this tool follows puts both principals in one statement; this
/// writes two, `Ec2AssumeRole` and `DeveloperAssumeRole`, so that each can be
/// tightened or removed on its own: a condition added for people (say
/// `aws:MultiFactorAuthPresent`) in a shared statement would also apply to EC2
/// and stop the instance profile from working. The permissions are the same.
///
/// `user_arns` must look like `arn:aws:iam::123456789012:user/NAME`,
/// `…:role/NAME` or `…:root`; they are deduplicated and sorted, and a single
/// one is written as a string, as the IAM console does.
pub fn trust_policy(user_arns: &[String]) -> Result<Value, PolicyError> {
    if user_arns.is_empty() {
        return Err(PolicyError::NoPrincipals);
    }
    let mut principals = BTreeSet::new();
    for arn in user_arns {
        check_principal(arn).map_err(|reason| PolicyError::BadPrincipal {
            arn: arn.clone(),
            reason,
        })?;
        principals.insert(arn.clone());
    }
    Ok(json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Ec2AssumeRole",
                "Effect": "Allow",
                "Principal": { "Service": "ec2.amazonaws.com" },
                "Action": "sts:AssumeRole"
            },
            {
                "Sid": "DeveloperAssumeRole",
                "Effect": "Allow",
                "Principal": { "AWS": one_or_many(&principals) },
                "Action": "sts:AssumeRole"
            }
        ]
    }))
}

/// Resources collected from the models, grouped by the statement they go in.
#[derive(Debug, Default)]
struct Grants {
    /// Unconditional: foundation models named directly, ARNs as given and
    /// geographic profiles.
    direct: BTreeSet<String>,
    /// Geographic profile ARNs, for the `bedrock:InferenceProfileArn` condition.
    geo_profiles: BTreeSet<String>,
    /// Foundation models behind geographic profiles, in every destination Region.
    geo_models: BTreeSet<String>,
    /// Global profile ARNs: the resource of the first global statement and the
    /// condition of the other two.
    global_profiles: BTreeSet<String>,
    /// Foundation models behind global profiles, in the source Region.
    global_source_models: BTreeSet<String>,
    /// Foundation models behind global profiles, Region-less.
    global_models: BTreeSet<String>,
}

impl Grants {
    fn add(&mut self, model: &str, region: &str, account: &str) -> Result<(), PolicyError> {
        let partition = partition_of(region);
        if model.starts_with("arn:") {
            check_model_arn(model).map_err(|reason| PolicyError::MalformedArn {
                model: model.to_owned(),
                reason,
            })?;
            self.direct.insert(model.to_owned());
            return Ok(());
        }
        check_model_id(model).map_err(|reason| PolicyError::BadModelId {
            model: model.to_owned(),
            reason,
        })?;
        let wrong_partition = || PolicyError::WrongPartition {
            model: model.to_owned(),
            region: region.to_owned(),
        };
        // `check_model_id` made sure there is a dot.
        let (prefix, base) = model.split_once('.').unwrap_or((model, ""));
        let profile =
            || format!("arn:{partition}:bedrock:{region}:{account}:inference-profile/{model}");
        if prefix == GLOBAL {
            check_profile_base(model, base)?;
            if partition != "aws" {
                return Err(wrong_partition());
            }
            self.global_profiles.insert(profile());
            self.global_source_models
                .insert(foundation_model(partition, region, base));
            self.global_models
                .insert(foundation_model(partition, "", base));
        } else if let Some(destinations) = destinations(prefix) {
            check_profile_base(model, base)?;
            let geo_partition = if prefix == "us-gov" {
                "aws-us-gov"
            } else {
                "aws"
            };
            if partition != geo_partition {
                return Err(wrong_partition());
            }
            self.direct.insert(profile());
            self.geo_profiles.insert(profile());
            // AWS lists the source Region separately from the destinations;
            // it is almost always one of them, but a Region the table does not
            // know yet still gets its own model.
            for r in destinations.iter().copied().chain([region]) {
                self.geo_models.insert(foundation_model(partition, r, base));
            }
        } else if is_provider(first_segment(base)) && !is_provider(prefix) {
            return Err(PolicyError::UnknownGeography {
                model: model.to_owned(),
                prefix: prefix.to_owned(),
            });
        } else {
            self.direct
                .insert(foundation_model(partition, region, model));
        }
        Ok(())
    }

    /// The policy document. `wildcard_account` says the profile ARNs contain
    /// `*`, which `StringEquals` would compare literally, so the
    /// `bedrock:InferenceProfileArn` conditions then use `ArnLike` (as AWS's
    /// own examples do for that key).
    fn into_policy(self, region: &str, wildcard_account: bool) -> Value {
        let arn_operator = if wildcard_account {
            "ArnLike"
        } else {
            "StringEquals"
        };
        let mut statements = Vec::new();
        if !self.direct.is_empty() {
            statements.push(statement("BedrockBatchInvoke", &self.direct, None));
        }
        if !self.geo_models.is_empty() {
            let condition = json!({
                arn_operator: { "bedrock:InferenceProfileArn": one_or_many(&self.geo_profiles) }
            });
            statements.push(statement(
                "BedrockBatchViaGeoProfile",
                &self.geo_models,
                Some(condition),
            ));
        }
        if !self.global_profiles.is_empty() {
            statements.push(statement(
                "BedrockBatchGlobalProfile",
                &self.global_profiles,
                Some(json!({ "StringEquals": { "aws:RequestedRegion": region } })),
            ));
            statements.push(statement(
                "BedrockBatchGlobalProfileSourceModel",
                &self.global_source_models,
                Some(global_condition(
                    region,
                    &self.global_profiles,
                    arn_operator,
                )),
            ));
            statements.push(statement(
                "BedrockBatchGlobalProfileGlobalModel",
                &self.global_models,
                Some(global_condition(
                    "unspecified",
                    &self.global_profiles,
                    arn_operator,
                )),
            ));
        }
        json!({ "Version": "2012-10-17", "Statement": statements })
    }
}

/// One `Allow` statement for the invoke actions.
fn statement(sid: &str, resources: &BTreeSet<String>, condition: Option<Value>) -> Value {
    let mut statement = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": INVOKE_ACTIONS,
        "Resource": resources,
    });
    if let Some(condition) = condition {
        statement["Condition"] = condition;
    }
    statement
}

/// The condition of the two foundation-model statements of a global profile:
/// the requested Region and the profile the request came through.
fn global_condition(
    requested_region: &str,
    profiles: &BTreeSet<String>,
    arn_operator: &str,
) -> Value {
    let profiles = one_or_many(profiles);
    if arn_operator == "StringEquals" {
        json!({ "StringEquals": {
            "aws:RequestedRegion": requested_region,
            "bedrock:InferenceProfileArn": profiles,
        }})
    } else {
        json!({
            "StringEquals": { "aws:RequestedRegion": requested_region },
            arn_operator: { "bedrock:InferenceProfileArn": profiles },
        })
    }
}

/// A single value as a string, several as an array.
fn one_or_many(values: &BTreeSet<String>) -> Value {
    match values.iter().next() {
        Some(only) if values.len() == 1 => Value::from(only.as_str()),
        _ => json!(values),
    }
}

fn foundation_model(partition: &str, region: &str, id: &str) -> String {
    format!("arn:{partition}:bedrock:{region}::foundation-model/{id}")
}

fn destinations(prefix: &str) -> Option<&'static [&'static str]> {
    GEOGRAPHIES
        .iter()
        .find(|(geo, _)| *geo == prefix)
        .map(|(_, regions)| *regions)
}

fn first_segment(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

/// Only used to tell a mistyped geography (`ap.anthropic.…`) from a
/// foundation model id (`anthropic.claude-…`): an id is taken for a profile
/// with an unknown prefix when its *second* segment is a provider. An id whose
/// provider is missing from the catalog is still accepted as a foundation model.
fn is_provider(segment: &str) -> bool {
    PROVIDERS.contains(&segment)
}

/// The ARN partition a Region belongs to.
pub(crate) fn partition_of(region: &str) -> &'static str {
    if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("cn-") {
        "aws-cn"
    } else {
        "aws"
    }
}

/// `ap-northeast-2`, `us-gov-west-1`: two letters, an optional `gov`, a
/// direction word and a number.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let rest = match parts.as_slice() {
        [area, "gov", rest @ ..] | [area, rest @ ..] if is_lower_word(area, 2) => rest,
        _ => return false,
    };
    match rest {
        [direction, number] => {
            is_lower_word(direction, 0)
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// Non-empty lowercase ASCII letters, of exactly `len` bytes unless `len` is 0.
fn is_lower_word(word: &str, len: usize) -> bool {
    !word.is_empty()
        && (len == 0 || word.len() == len)
        && word.bytes().all(|b| b.is_ascii_lowercase())
}

fn is_account(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

/// A model or profile id: `provider.name[:version]`, in Bedrock's character set.
fn check_model_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty model id".to_owned());
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
    {
        return Err(format!("unexpected character {c:?} in a model id"));
    }
    if !id.contains('.') {
        return Err(
            "expected a model id like `anthropic.claude-3-haiku-20240307-v1:0`, \
             an inference profile id or an ARN"
                .to_owned(),
        );
    }
    Ok(())
}

/// The foundation model id after a profile's prefix must itself be a model id.
fn check_profile_base(model: &str, base: &str) -> Result<(), PolicyError> {
    if check_model_id(base).is_err() {
        return Err(PolicyError::BadModelId {
            model: model.to_owned(),
            reason: "expected a foundation model id after the inference profile prefix".to_owned(),
        });
    }
    Ok(())
}

/// `arn:PARTITION:bedrock:REGION:ACCOUNT:TYPE/ID` for a type `modelId` accepts.
/// Foundation models have no account, and the global one no Region either.
fn check_model_arn(arn: &str) -> Result<(), String> {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, service, region, account, resource] = fields.as_slice() else {
        return Err("expected `arn:aws:bedrock:REGION:ACCOUNT:TYPE/ID`".to_owned());
    };
    if !matches!(*partition, "aws" | "aws-us-gov" | "aws-cn") {
        return Err(format!("unknown partition `{partition}`"));
    }
    if *service != "bedrock" {
        return Err(format!("service is `{service}`, not `bedrock`"));
    }
    let Some((kind, id)) = resource.split_once('/') else {
        return Err("expected a resource like `foundation-model/ID`".to_owned());
    };
    if !ARN_RESOURCE_TYPES.contains(&kind) {
        return Err(format!("`{kind}` is not a model resource type"));
    }
    if id.is_empty() {
        return Err(format!("empty `{kind}` id"));
    }
    if kind == "foundation-model" {
        if !account.is_empty() {
            return Err("a foundation-model ARN has no account".to_owned());
        }
        if !region.is_empty() && !is_region(region) {
            return Err(format!("bad region `{region}`"));
        }
    } else {
        if !is_region(region) {
            return Err(format!("bad region `{region}`"));
        }
        if !is_account(account) {
            return Err(format!("bad account `{account}`"));
        }
    }
    Ok(())
}

/// `arn:aws:iam::ACCOUNT:user/NAME`, `…:role/NAME` (either with a path) or
/// `…:root`.
fn check_principal(arn: &str) -> Result<(), String> {
    const SHAPE: &str = "expected `arn:aws:iam::ACCOUNT:user/NAME`, `…:role/NAME` or `…:root`";
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "iam", "", account, resource] = fields.as_slice() else {
        return Err(SHAPE.to_owned());
    };
    if !matches!(*partition, "aws" | "aws-us-gov" | "aws-cn") {
        return Err(format!("unknown partition `{partition}`"));
    }
    if !is_account(account) {
        return Err(format!("bad account `{account}`"));
    }
    if *resource == "root" {
        return Ok(());
    }
    let name = match resource.split_once('/') {
        Some(("user" | "role", path_and_name)) => path_and_name.rsplit('/').next().unwrap_or(""),
        _ => return Err(SHAPE.to_owned()),
    };
    // IAM user and role names: letters, digits and `+=,.@_-`.
    let valid = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if name.is_empty() || !resource.chars().all(|c| valid(c) || c == '/') {
        return Err(format!("bad user or role name in `{resource}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
    const ACCOUNT: &str = "123456789012";

    fn models(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    fn policy(ids: &[&str], region: &str, account: Option<&str>) -> Value {
        invoke_policy(&models(ids), region, account).unwrap()
    }

    fn error(ids: &[&str], region: &str, account: Option<&str>) -> PolicyError {
        invoke_policy(&models(ids), region, account).unwrap_err()
    }

    fn actions() -> Value {
        json!([
            "bedrock:InvokeModel",
            "bedrock:InvokeModelWithResponseStream"
        ])
    }

    #[test]
    fn foundation_model_in_seoul() {
        // The guide's `arn:aws:bedrock:ap-northeast-2::foundation-model/*`,
        // narrowed to the one model the job uses.
        assert_eq!(
            policy(&[HAIKU], "ap-northeast-2", None),
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "BedrockBatchInvoke",
                    "Effect": "Allow",
                    "Action": actions(),
                    "Resource": [
                        "arn:aws:bedrock:ap-northeast-2::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"
                    ]
                }]
            })
        );
    }

    #[test]
    fn apac_profile_covers_every_apac_destination() {
        let id = "apac.anthropic.claude-3-5-sonnet-20240620-v1:0";
        let profile =
            "arn:aws:bedrock:ap-northeast-2:*:inference-profile/apac.anthropic.claude-3-5-sonnet-20240620-v1:0";
        let model = |region: &str| {
            format!(
                "arn:aws:bedrock:{region}::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0"
            )
        };
        let regions = [
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-7",
            "me-central-1",
        ];
        let models: Vec<String> = regions.iter().map(|r| model(r)).collect();
        assert_eq!(
            policy(&[id], "ap-northeast-2", None),
            json!({
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "BedrockBatchInvoke",
                        "Effect": "Allow",
                        "Action": actions(),
                        "Resource": [profile]
                    },
                    {
                        "Sid": "BedrockBatchViaGeoProfile",
                        "Effect": "Allow",
                        "Action": actions(),
                        "Resource": models,
                        "Condition": { "ArnLike": { "bedrock:InferenceProfileArn": profile } }
                    }
                ]
            })
        );
    }

    #[test]
    fn us_profile_with_account() {
        let profile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";
        let models: Vec<String> = [
            "ca-central-1",
            "ca-west-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ]
        .iter()
        .map(|r| format!("arn:aws:bedrock:{r}::foundation-model/{HAIKU}"))
        .collect();
        assert_eq!(
            policy(&[&format!("us.{HAIKU}")], "us-east-1", Some(ACCOUNT)),
            json!({
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "BedrockBatchInvoke",
                        "Effect": "Allow",
                        "Action": actions(),
                        "Resource": [profile]
                    },
                    {
                        "Sid": "BedrockBatchViaGeoProfile",
                        "Effect": "Allow",
                        "Action": actions(),
                        "Resource": models,
                        "Condition": { "StringEquals": { "bedrock:InferenceProfileArn": profile } }
                    }
                ]
            })
        );
    }

    #[test]
    fn global_profile_has_the_three_documented_parts() {
        let base = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        let profile =
            format!("arn:aws:bedrock:ap-northeast-2:123456789012:inference-profile/global.{base}");
        assert_eq!(
            policy(
                &[&format!("global.{base}")],
                "ap-northeast-2",
                Some(ACCOUNT)
            ),
            json!({
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "BedrockBatchGlobalProfile",
                        "Effect": "Allow",
                        "Action": actions(),
                        "Resource": [profile],
                        "Condition": { "StringEquals": { "aws:RequestedRegion": "ap-northeast-2" } }
                    },
                    {
                        "Sid": "BedrockBatchGlobalProfileSourceModel",
                        "Effect": "Allow",
                        "Action": actions(),
                        "Resource": [format!("arn:aws:bedrock:ap-northeast-2::foundation-model/{base}")],
                        "Condition": { "StringEquals": {
                            "aws:RequestedRegion": "ap-northeast-2",
                            "bedrock:InferenceProfileArn": profile
                        }}
                    },
                    {
                        "Sid": "BedrockBatchGlobalProfileGlobalModel",
                        "Effect": "Allow",
                        "Action": actions(),
                        "Resource": [format!("arn:aws:bedrock:::foundation-model/{base}")],
                        "Condition": { "StringEquals": {
                            "aws:RequestedRegion": "unspecified",
                            "bedrock:InferenceProfileArn": profile
                        }}
                    }
                ]
            })
        );
    }

    #[test]
    fn global_profile_without_account_uses_arn_like() {
        let doc = policy(&[&format!("global.{HAIKU}")], "us-east-1", None);
        assert_eq!(
            doc["Statement"][2]["Condition"],
            json!({
                "StringEquals": { "aws:RequestedRegion": "unspecified" },
                "ArnLike": { "bedrock:InferenceProfileArn":
                    format!("arn:aws:bedrock:us-east-1:*:inference-profile/global.{HAIKU}") }
            })
        );
    }

    #[test]
    fn arns_pass_through() {
        let arns = [
            "arn:aws:bedrock:us-west-2::foundation-model/amazon.nova-pro-v1:0",
            "arn:aws:bedrock:ap-northeast-2:123456789012:application-inference-profile/a1b2c3d4e5f6",
            "arn:aws:bedrock:ap-northeast-2:123456789012:provisioned-model/abcdef123456",
        ];
        let mut sorted = arns.to_vec();
        sorted.sort();
        assert_eq!(
            policy(&arns, "ap-northeast-2", None),
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "BedrockBatchInvoke",
                    "Effect": "Allow",
                    "Action": actions(),
                    "Resource": sorted
                }]
            })
        );
    }

    #[test]
    fn identical_models_are_granted_once() {
        assert_eq!(
            policy(&[HAIKU, HAIKU], "ap-northeast-2", None),
            policy(&[HAIKU], "ap-northeast-2", None)
        );
        let two_profiles = policy(
            &[&format!("jp.{HAIKU}"), &format!("jp.{HAIKU}")],
            "ap-northeast-1",
            None,
        );
        assert_eq!(
            two_profiles["Statement"][0]["Resource"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            two_profiles["Statement"][1]["Resource"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn several_profiles_share_one_conditioned_statement() {
        let doc = policy(
            &[&format!("eu.{HAIKU}"), "eu.amazon.nova-pro-v1:0", HAIKU],
            "eu-west-1",
            Some(ACCOUNT),
        );
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(
            statements[0]["Resource"],
            json!([
                format!("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.amazon.nova-pro-v1:0"),
                format!("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.{HAIKU}"),
                format!("arn:aws:bedrock:eu-west-1::foundation-model/{HAIKU}"),
            ])
        );
        assert_eq!(
            statements[1]["Condition"]["StringEquals"]["bedrock:InferenceProfileArn"],
            json!([
                "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.amazon.nova-pro-v1:0",
                format!("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.{HAIKU}"),
            ])
        );
        // 9 EU Regions for each of the two models.
        assert_eq!(statements[1]["Resource"].as_array().unwrap().len(), 18);
    }

    #[test]
    fn govcloud_profile_uses_the_govcloud_partition() {
        let doc = policy(
            &[&format!("us-gov.{HAIKU}")],
            "us-gov-west-1",
            Some(ACCOUNT),
        );
        assert_eq!(
            doc["Statement"][1]["Resource"],
            json!([
                format!("arn:aws-us-gov:bedrock:us-gov-east-1::foundation-model/{HAIKU}"),
                format!("arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/{HAIKU}"),
            ])
        );
    }

    #[test]
    fn no_models_is_an_error() {
        assert_eq!(error(&[], "ap-northeast-2", None), PolicyError::NoModels);
        assert_eq!(
            PolicyError::NoModels.to_string(),
            "no models given: name at least one model id, inference profile id or ARN"
        );
    }

    #[test]
    fn malformed_arns_are_errors() {
        for (arn, reason) in [
            (
                "arn:aws:bedrock",
                "expected `arn:aws:bedrock:REGION:ACCOUNT:TYPE/ID`",
            ),
            (
                "arn:aws:s3:::bucket/foundation-model/x",
                "service is `s3`, not `bedrock`",
            ),
            (
                "arn:aws:bedrock:ap-northeast-2::model/x",
                "`model` is not a model resource type",
            ),
            (
                "arn:aws:bedrock:ap-northeast-2::foundation-model",
                "expected a resource like `foundation-model/ID`",
            ),
            (
                "arn:aws:bedrock:ap-northeast-2:123456789012:foundation-model/x.y",
                "a foundation-model ARN has no account",
            ),
            (
                "arn:aws:bedrock:ap-northeast-2:*:inference-profile/apac.x.y",
                "bad account `*`",
            ),
        ] {
            assert_eq!(
                error(&[arn], "ap-northeast-2", None),
                PolicyError::MalformedArn {
                    model: arn.to_owned(),
                    reason: reason.to_owned()
                },
                "{arn}"
            );
        }
        assert_eq!(
            error(&["arn:aws:bedrock:seoul::foundation-model/x.y"], "ap-northeast-2", None)
                .to_string(),
            "model `arn:aws:bedrock:seoul::foundation-model/x.y`: malformed ARN: bad region `seoul`"
        );
    }

    #[test]
    fn unknown_geography_is_an_error() {
        let id = format!("ap.{HAIKU}");
        let err = error(&[&id], "ap-northeast-2", None);
        assert_eq!(
            err,
            PolicyError::UnknownGeography {
                model: id.clone(),
                prefix: "ap".to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "model `{id}`: unknown cross-Region inference prefix `ap.` \
                 (known: apac, au, ca, eu, global, jp, us, us-gov)"
            )
        );
        // A provider-less dotted id is still a foundation model.
        assert!(invoke_policy(&models(&["openai.gpt-oss-120b-1:0"]), "us-west-2", None).is_ok());
    }

    #[test]
    fn bad_region_is_an_error() {
        for region in [
            "",
            "seoul",
            "AP-NORTHEAST-2",
            "ap-northeast",
            "ap-northeast-2a",
            "a-b-1",
        ] {
            assert_eq!(
                error(&[HAIKU], region, None),
                PolicyError::BadRegion {
                    region: region.to_owned()
                },
                "{region:?}"
            );
        }
        assert_eq!(
            error(&[HAIKU], "seoul", None).to_string(),
            "region `seoul`: expected a Region code like `ap-northeast-2`"
        );
        assert!(is_region("us-gov-west-1"));
        assert!(is_region("il-central-1"));
    }

    #[test]
    fn bad_account_is_an_error() {
        assert_eq!(
            error(&[HAIKU], "ap-northeast-2", Some("1234")).to_string(),
            "account `1234`: expected a 12-digit AWS account id"
        );
    }

    #[test]
    fn bad_model_ids_are_errors() {
        assert_eq!(
            error(&["claude"], "ap-northeast-2", None).to_string(),
            "model `claude`: expected a model id like `anthropic.claude-3-haiku-20240307-v1:0`, \
             an inference profile id or an ARN"
        );
        assert_eq!(
            error(&["anthropic.claude 3"], "ap-northeast-2", None).to_string(),
            "model `anthropic.claude 3`: unexpected character ' ' in a model id"
        );
        assert_eq!(
            error(&["apac.claude"], "ap-northeast-2", None).to_string(),
            "model `apac.claude`: expected a foundation model id after the inference profile prefix"
        );
    }

    #[test]
    fn profile_outside_its_partition_is_an_error() {
        assert_eq!(
            error(&[&format!("us-gov.{HAIKU}")], "us-east-1", None).to_string(),
            format!(
                "model `us-gov.{HAIKU}`: this inference profile can't be called from region `us-east-1`"
            )
        );
        assert!(matches!(
            error(&[&format!("global.{HAIKU}")], "us-gov-west-1", None),
            PolicyError::WrongPartition { .. }
        ));
    }

    #[test]
    fn trust_policy_lets_ec2_and_the_developer_assume_the_role() {
        let user = "arn:aws:iam::123456789012:user/DeveloperUser";
        assert_eq!(
            trust_policy(&models(&[user, user])).unwrap(),
            json!({
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "Ec2AssumeRole",
                        "Effect": "Allow",
                        "Principal": { "Service": "ec2.amazonaws.com" },
                        "Action": "sts:AssumeRole"
                    },
                    {
                        "Sid": "DeveloperAssumeRole",
                        "Effect": "Allow",
                        "Principal": { "AWS": user },
                        "Action": "sts:AssumeRole"
                    }
                ]
            })
        );
    }

    #[test]
    fn trust_policy_lists_several_principals_sorted() {
        let doc = trust_policy(&models(&[
            "arn:aws:iam::123456789012:user/team/Zoe",
            "arn:aws:iam::123456789012:role/CiRunner",
            "arn:aws:iam::210987654321:root",
        ]))
        .unwrap();
        assert_eq!(
            doc["Statement"][1]["Principal"]["AWS"],
            json!([
                "arn:aws:iam::123456789012:role/CiRunner",
                "arn:aws:iam::123456789012:user/team/Zoe",
                "arn:aws:iam::210987654321:root",
            ])
        );
    }

    #[test]
    fn trust_policy_errors() {
        assert_eq!(trust_policy(&[]).unwrap_err(), PolicyError::NoPrincipals);
        for (arn, reason) in [
            (
                "DeveloperUser",
                "expected `arn:aws:iam::ACCOUNT:user/NAME`, `…:role/NAME` or `…:root`",
            ),
            ("arn:aws:iam::1234:user/Dev", "bad account `1234`"),
            (
                "arn:aws:iam::123456789012:group/Devs",
                "expected `arn:aws:iam::ACCOUNT:user/NAME`, `…:role/NAME` or `…:root`",
            ),
            (
                "arn:aws:iam::123456789012:user/",
                "bad user or role name in `user/`",
            ),
            (
                "arn:aws:iam::123456789012:user/Dev User",
                "bad user or role name in `user/Dev User`",
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/R/s",
                "expected `arn:aws:iam::ACCOUNT:user/NAME`, `…:role/NAME` or `…:root`",
            ),
        ] {
            assert_eq!(
                trust_policy(&models(&[arn])).unwrap_err(),
                PolicyError::BadPrincipal {
                    arn: arn.to_owned(),
                    reason: reason.to_owned()
                },
                "{arn}"
            );
        }
        assert_eq!(
            trust_policy(&models(&["arn:aws:iam::1234:user/Dev"]))
                .unwrap_err()
                .to_string(),
            "user ARN `arn:aws:iam::1234:user/Dev`: bad account `1234`"
        );
    }
}
