"""What KServe's storage initializer gets for s3:// and hf:// models: the environment its webhook builds from the
predictor's service account, transcribed from KServe's source (0.15 to 0.21 agree):

- pkg/credentials/service_account_credentials.go: CreateSecretVolumeAndEnvFromServiceAccount (an
  ``eks.amazonaws.com/role-arn`` annotation adds the account's own s3 annotations; then every listed
  Secret, a missing one failing the pod's admission) and mountSecretCredential (a Secret is S3's when it
  has the s3SecretAccessKeyName key; one with none of the known keys is skipped);
- pkg/credentials/s3/s3_secret.go: BuildSecretEnvs (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY as
  secretKeyRef to that Secret, under the configured key names);
- pkg/credentials/s3/utils.go: BuildS3EnvVars, getEnvValue (annotation, else the Secret's data, else the
  inferenceservice-config), getEndpointConfiguration (a scheme in the endpoint decides S3_USE_HTTPS);
- pkg/utils/utils.go: MergeEnvs (an override replaces only ``value``);
- pkg/credentials/hf/hf_secret.go: BuildSecretEnvs (HF_TOKEN as a secretKeyRef to the Secret, appended).
  mountSecretCredential's branches are exclusive, in this order: S3 (s3SecretAccessKeyName), GCS, Azure,
  HTTPS, HDFS, then Hugging Face (HF_TOKEN; since 0.14), then ModelScope: a Secret with the S3 key never
  gives HF_TOKEN.

``DEFAULT_S3_CONFIG`` is the ``credentials.s3`` block of KServe's default inferenceservice-config
(charts/kserve-resources/files/common/configmap.yaml).
"""

from __future__ import annotations

import base64
import copy
from typing import Any

DEFAULT_S3_CONFIG = {
    "s3AccessKeyIDName": "AWS_ACCESS_KEY_ID",
    "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY",
    "s3Endpoint": "",
    "s3UseHttps": "",
    "s3Region": "",
    "s3VerifySSL": "",
    "s3UseVirtualBucket": "",
    "s3UseAccelerate": "",
    "s3UseAnonymousCredential": "",
    "s3CABundleConfigMap": "",
    "s3CABundle": "",
}
IRSA = "eks.amazonaws.com/role-arn"
A = "serving.kserve.io/"
# (annotation, Secret data key, config key, env var), in BuildS3EnvVars' order after the endpoint
_PLAIN = [
    (A + "s3-verifyssl", "S3_VERIFY_SSL", "s3VerifySSL", "S3_VERIFY_SSL"),
    (A + "s3-useanoncredential", "awsAnonymousCredential", "s3UseAnonymousCredential", "awsAnonymousCredential"),
    (A + "s3-region", "AWS_DEFAULT_REGION", "s3Region", "AWS_DEFAULT_REGION"),
    (A + "s3-usevirtualbucket", "S3_USER_VIRTUAL_BUCKET", "s3UseVirtualBucket", "S3_USER_VIRTUAL_BUCKET"),
    (A + "s3-useaccelerate", "S3_USE_ACCELERATE", "s3UseAccelerate", "S3_USE_ACCELERATE"),
    (A + "s3-cabundle", "AWS_CA_BUNDLE", "s3CABundle", "AWS_CA_BUNDLE"),
    (A + "s3-cabundle-configmap", "AWS_CA_BUNDLE_CONFIGMAP", "s3CABundleConfigMap", "AWS_CA_BUNDLE_CONFIGMAP"),
]


# Data keys of the branches mountSecretCredential tries between S3's and Hugging Face's (GCS's default
# gcsCredentialFileName, Azure's four, HTTPS's, HDFS's): a Secret with one of them is that store's.
_BEFORE_HF = (
    "gcloud-application-credentials.json",
    "AZ_CLIENT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_ACCESS_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "https-host",
    "HDFS_NAMENODE",
)
HF_TOKEN = "HF_TOKEN"


class MissingSecret(Exception):
    """The account lists a Secret that does not exist: KServe's webhook refuses the pod."""


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    """The Secret's data as the API server stores it: ``data`` decoded, ``stringData`` merged over it."""
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


def _value(annotations: dict, data: dict, annotation: str, data_key: str, config_value: str) -> str:
    if annotation in annotations:
        return annotations[annotation]
    if data_key in data:
        return data[data_key]
    return config_value


def build_s3_env_vars(annotations: dict, data: dict, cfg: dict) -> list[dict]:
    envs: list[dict] = []
    endpoint = _value(annotations, data, A + "s3-endpoint", "S3_ENDPOINT", cfg["s3Endpoint"])
    if endpoint:
        endpoint = endpoint.strip()
        if endpoint.lower().startswith("https://"):
            use_https, host, url = "1", endpoint[8:], endpoint
        elif endpoint.lower().startswith("http://"):
            use_https, host, url = "0", endpoint[7:], endpoint
        else:
            use_https = _value(annotations, data, A + "s3-usehttps", "S3_USE_HTTPS", cfg["s3UseHttps"])
            host, url = endpoint, ("http://" if use_https == "0" else "https://") + endpoint
        if use_https:
            envs.append({"name": "S3_USE_HTTPS", "value": use_https})
        envs += [{"name": "S3_ENDPOINT", "value": host}, {"name": "AWS_ENDPOINT_URL", "value": url}]
    for annotation, data_key, config_key, env in _PLAIN:
        value = _value(annotations, data, annotation, data_key, cfg[config_key])
        if value:
            envs.append({"name": env, "value": value})
    return envs


def merge_envs(base: list[dict], overrides: list[dict]) -> list[dict]:
    extra = []
    for override in overrides:
        for env in base:
            if env["name"] == override["name"]:
                env["value"] = override.get("value", "")
                break
        else:
            extra.append(override)
    return base + extra


def storage_initializer_env(
    service_account: dict[str, Any], secrets: dict[str, dict[str, Any]], cfg: dict[str, str] = DEFAULT_S3_CONFIG
) -> list[dict]:
    """The S3 and Hugging Face environment of the storage-initializer container of a pod running as
    ``service_account``; ``secrets``: the Secrets of its namespace by name."""
    env: list[dict] = []
    annotations = service_account.get("metadata", {}).get("annotations") or {}
    if IRSA in annotations:
        env += build_s3_env_vars(annotations, {}, cfg)
    for ref in service_account.get("secrets") or []:
        if ref["name"] not in secrets:
            raise MissingSecret(ref["name"])
        secret = secrets[ref["name"]]
        data = secret_data(secret)
        if cfg["s3SecretAccessKeyName"] in data:
            keys = (("AWS_ACCESS_KEY_ID", "s3AccessKeyIDName"), ("AWS_SECRET_ACCESS_KEY", "s3SecretAccessKeyName"))
            refs = [
                {"name": var, "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": cfg[key]}}}
                for var, key in keys
            ]
            sec_annotations = secret.get("metadata", {}).get("annotations") or {}
            env = merge_envs(copy.deepcopy(env), refs + build_s3_env_vars(sec_annotations, data, cfg))
        elif any(key in data for key in _BEFORE_HF):
            pass  # another store's (GCS, Azure, HTTPS, HDFS): none of the variables modelled here
        elif HF_TOKEN in data:
            env = env + [{"name": HF_TOKEN, "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": HF_TOKEN}}}]
        # a Secret with none of the keys is skipped: KServe adds nothing for it
    return env


def as_dict(env: list[dict]) -> dict[str, Any]:
    """name -> value, or -> ("secretKeyRef", secret, key) for a reference."""
    out: dict[str, Any] = {}
    for e in env:
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        out[e["name"]] = ("secretKeyRef", ref["name"], ref["key"]) if ref else e["value"]
    return out
