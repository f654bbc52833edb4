"""The dog-breed project's Lambda function, as the seed project writes it.

It reads the image URL from the event, asks the SageMaker endpoint for the breed scores and returns
an API-Gateway-style answer. Nothing in it knows about Kennel: boto3 finds the endpoint URL and the
execution role's credentials in the environment, exactly as on AWS.
"""

import json
import os

import boto3

ENDPOINT_NAME = os.environ.get("ENDPOINT_NAME", "dog-breeds")
runtime = boto3.Session().client("sagemaker-runtime")


def lambda_handler(event, context):
    print("Context:", context.function_name, context.aws_request_id)
    print("Event type:", type(event))
    response = runtime.invoke_endpoint(
        EndpointName=ENDPOINT_NAME,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"url": event["url"]}),
    )
    scores = json.loads(response["Body"].read().decode("utf-8"))
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "text/plain", "Access-Control-Allow-Origin": "*"},
        "type-result": str(type(scores)),
        "body": json.dumps(scores),
    }
