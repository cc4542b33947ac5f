"""boto3 against the bedrock-batch emulator: an independent client checking the wire shapes.

Started by the Rust test `emulator::boto3_conformance`, which starts the emulator and passes
EMULATOR_URL, EMULATOR_ACCESS_KEY_ID and EMULATOR_SECRET_ACCESS_KEY. Starts nothing itself.
Also usable by hand against `bedrock-batch emulator`. Exits non-zero on the first mismatch.
"""

import json
import os
import sys

import boto3
from botocore.config import Config

URL = os.environ["EMULATOR_URL"]
KEY = os.environ.get("EMULATOR_ACCESS_KEY_ID", "AKIAEMULATORSTATIC01")
SECRET = os.environ.get("EMULATOR_SECRET_ACCESS_KEY", "emulatorStaticSecretKey0000000000000000/")
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


def answer(prompt):
    """The emulator's documented answer: FNV-1a-64 of the prompt and its first six words."""
    h = 0xCBF29CE484222325
    for b in prompt.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    words = prompt.split()[:6]
    return "Answer %016x:%s." % (h, "".join(" " + w for w in words))


def output_tokens(text):
    return max(1, -(-len(text) // 4))


def _token_class(c):
    o = ord(c)
    if ("a" <= c <= "z") or ("A" <= c <= "Z"):
        return "word"
    if 0xC0 <= o <= 0x24F and c.isalpha():
        return "word"
    if "0" <= c <= "9":
        return "digit"
    if c == "\n":
        return "newline"
    if c.isspace():
        return "space"
    if 0x370 <= o <= 0x1FFF:
        return "script"
    return "single"


def count_tokens(text):
    """Input tokens, as src/emulator/tokenizer.rs counts them."""

    def close(run, weight):
        if run == "word":
            return 1 if weight <= 6 else -(-weight // 4)
        if run == "digit":
            return -(-weight // 3)
        if run == "script":
            return -(-weight // 2)
        if run == "newline":
            return 1
        return 0

    total, run, weight = 0, None, 0
    for c in text:
        k = _token_class(c)
        if k == "single":
            total += close(run, weight) + 1
            run, weight = None, 0
            continue
        if run != k:
            total += close(run, weight)
            run, weight = k, 0
        weight += 2 if (k == "word" and ord(c) > 127) else 1
    total += close(run, weight)
    return max(1, total)


def client(service, **creds):
    return boto3.client(
        service,
        endpoint_url=URL,
        region_name="ap-northeast-2",
        aws_access_key_id=creds.get("key", KEY),
        aws_secret_access_key=creds.get("secret", SECRET),
        aws_session_token=creds.get("token"),
        config=NO_RETRIES,
    )


def check(cond, what):
    if not cond:
        print("FAILED: " + what)
        sys.exit(1)


def main():
    br = client("bedrock-runtime")

    prompt = "Hello from boto3, what is two plus two?"
    r = br.converse(
        modelId=MODEL,
        system=[{"text": "be brief"}],
        messages=[{"role": "user", "content": [{"text": prompt}]}],
        inferenceConfig={"maxTokens": 256, "temperature": 0.0},
    )
    text = r["output"]["message"]["content"][0]["text"]
    check(text == answer(prompt), "converse text %r != %r" % (text, answer(prompt)))
    check(r["stopReason"] == "end_turn", "converse stopReason")
    check(r["usage"]["inputTokens"] == count_tokens("be brief\n" + prompt), "converse inputTokens")
    check(r["usage"]["outputTokens"] == output_tokens(text), "converse outputTokens")
    check("latencyMs" in r["metrics"], "converse metrics")
    check(len(r["ResponseMetadata"]["RequestId"]) == 36, "request id")

    arn = ("arn:aws:bedrock:ap-northeast-2:123456789012:inference-profile/"
           "apac.anthropic.claude-3-5-sonnet-20240620-v1:0")
    r = br.converse_stream(modelId=arn, messages=[{"role": "user", "content": [{"text": prompt}]}])
    streamed, usage = "", None
    for ev in r["stream"]:
        if "contentBlockDelta" in ev:
            streamed += ev["contentBlockDelta"]["delta"]["text"]
        if "metadata" in ev:
            usage = ev["metadata"]["usage"]
    check(streamed == answer(prompt), "converse_stream text")
    check(usage and usage["outputTokens"] == output_tokens(streamed), "converse_stream usage")

    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "native body"}],
    }
    r = br.invoke_model(modelId=MODEL, body=json.dumps(body), contentType="application/json",
                        accept="application/json")
    native = json.loads(r["body"].read())
    check(native["content"][0]["text"] == answer("native body"), "invoke_model text")
    check(native["usage"]["output_tokens"] == output_tokens(answer("native body")), "invoke_model usage")
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    check(headers.get("x-amzn-bedrock-input-token-count") == str(count_tokens("native body")),
          "input token header %r" % headers)
    check("x-amzn-bedrock-invocation-latency" in headers, "latency header")

    try:
        br.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "busy [[emu:throttle]]"}]}])
        check(False, "throttle marker did not raise")
    except br.exceptions.ThrottlingException as e:
        check(e.response["Error"]["Message"] == "Too many requests, please wait before trying again.",
              "throttle message")
        check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 429, "throttle status")
        check("Retry-After" not in e.response["ResponseMetadata"]["HTTPHeaders"], "no Retry-After")

    try:
        br.invoke_model(modelId=MODEL, body=json.dumps({"inputText": "wrong family"}))
        check(False, "bad native body did not raise")
    except br.exceptions.ValidationException:
        pass

    sts = client("sts")
    me = sts.get_caller_identity()
    check(me["Arn"] == "arn:aws:iam::123456789012:user/DeveloperUser", "static identity %r" % me["Arn"])
    role = "arn:aws:iam::123456789012:role/BedrockExecutionRole"
    ar = sts.assume_role(RoleArn=role, RoleSessionName="conformance", ExternalId="ext-123",
                         DurationSeconds=900)
    creds = ar["Credentials"]
    check(creds["AccessKeyId"].startswith("ASIA"), "issued key prefix")
    check(ar["AssumedRoleUser"]["Arn"] ==
          "arn:aws:sts::123456789012:assumed-role/BedrockExecutionRole/conformance", "assumed arn")
    as_role = dict(key=creds["AccessKeyId"], secret=creds["SecretAccessKey"], token=creds["SessionToken"])
    me = client("sts", **as_role).get_caller_identity()
    check(me["Arn"] == ar["AssumedRoleUser"]["Arn"], "role identity %r" % me["Arn"])
    check(me["Account"] == "123456789012", "account")
    r = client("bedrock-runtime", **as_role).converse(
        modelId=MODEL, messages=[{"role": "user", "content": [{"text": "as role"}]}])
    check(r["output"]["message"]["content"][0]["text"] == answer("as role"), "converse as role")

    print("boto3 conformance: ok")


if __name__ == "__main__":
    main()
