"""Create the S3 buckets the pipeline and MLflow use, on MinIO or any S3; a bucket that exists already is fine.

Run by the Job in buckets.yaml (the MLflow image: python + boto3). Settings from the environment:
    BUCKETS                 comma-separated bucket names (default: sealion-vl)
    MLFLOW_S3_ENDPOINT_URL  the S3 endpoint ('' or unset: AWS's default)
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   credentials
    AWS_DEFAULT_REGION      region of new buckets (default us-east-1)
    WAIT_SECONDS            how long to wait for the endpoint to answer (default 300: MinIO may still be starting)
Exit status 0 when every bucket exists afterwards, 1 otherwise.
"""
from __future__ import annotations

import os
import sys
import time


def connect(endpoint: str | None, region: str, attempts: int = 5):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint or None, region_name=region,
                        config=Config(retries={"max_attempts": attempts, "mode": "standard"}, connect_timeout=5,
                                      read_timeout=30, s3={"addressing_style": "path"}))


def wait_for(s3, wait_s: float, poll_s: float = 5.0) -> None:
    """Until the endpoint answers (any S3 answer, even a refusal, means it is up); `s3` retries nothing itself."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    deadline = time.monotonic() + wait_s
    while True:
        try:
            s3.list_buckets()
            return
        except ClientError:
            return
        except EndpointConnectionError as err:
            if time.monotonic() >= deadline:
                raise SystemExit(f"the S3 endpoint did not answer in {wait_s:.0f} s: {err}") from None
            print(f"waiting for the S3 endpoint: {err}", flush=True)
            time.sleep(poll_s)


def ensure(s3, bucket: str, region: str) -> str:
    """'created' or 'exists'; raises when the bucket cannot be had (e.g. someone else's name)."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return "exists"
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code"))
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise RuntimeError(f"bucket {bucket}: {code} ({err}); a 403 means it exists but these credentials "
                               "may not use it") from None
    extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=bucket, **extra)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":   # made meanwhile
            return "exists"
        raise
    return "created"


def main(environ=os.environ) -> int:
    buckets = [b.strip() for b in environ.get("BUCKETS", "sealion-vl").split(",") if b.strip()]
    region = environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = environ.get("MLFLOW_S3_ENDPOINT_URL") or None
    wait_for(connect(endpoint, region, attempts=1), float(environ.get("WAIT_SECONDS", "300")))
    s3 = connect(endpoint, region)
    failed = 0
    for bucket in buckets:
        try:
            print(f"s3://{bucket}: {ensure(s3, bucket, region)}", flush=True)
        except Exception as err:  # report every bucket, then fail
            print(f"s3://{bucket}: FAILED: {err}", file=sys.stderr, flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
