"""The deploy rehearsal: the transformed template, deployed into the emulator's CloudFormation.

    python tests/infra/stack.py deploy STAGE TEMPLATE.json [--approver EMAIL]...
                                 [--visibility SECONDS] [--max-receives N]

Talks to moto's server at $MOTO_URL. Uploads a placeholder code zip where the translated
functions' CodeUri points (tests/infra/sam.py), creates the stack `image-request-STAGE`
with the template's own parameters, and fails unless every resource the emulator supports
was created. Then, because nothing here can run the functions (moto would try Docker for
each message), it disables the stack's event source mappings: the tests consume the
stack's queues with the same code, in process. With --visibility or --max-receives it sets
the work queues' visibility timeout and redrive count (a test cannot wait the deployed
three minutes for a redelivery); everything else is as the template made it.

Prints one JSON object: the stack's name, each function's environment as the stack
resolved it (by logical id), and every resource's physical id by logical id.
"""

import argparse
import io
import json
import os
import sys
import zipfile

import time

import boto3
from botocore.config import Config

CODE_BUCKET = "image-request-code"
CODE_KEY = "code.zip"
# What moto's CloudFormation skips (it creates everything else the template holds); the
# template tests (tests/tests/template.rs) check these statically.
SKIPPED = (
    "AWS::ApiGatewayV2::",
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
)

# Left out of what moto is sent: the dashboard names the alarms' ARNs, which moto cannot
# resolve since it does not create alarms (tests/tests/template.rs checks the dashboard).
NOT_SENT = ("AWS::CloudWatch::Dashboard",)


def client(name):
    return boto3.client(
        name,
        endpoint_url=os.environ["MOTO_URL"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        # The emulator answers garbage now and then when many tests deploy at once.
        config=Config(retries={"max_attempts": 8, "mode": "standard"}),
    )


def retrying(call, *args, **kwargs):
    """One emulator call, tried again after a hiccup (moto answers garbage now and then
    when many tests deploy at once)."""
    for attempt in range(3):
        try:
            return call(*args, **kwargs)
        except Exception as e:
            if attempt == 2:
                raise
            print(f"{call.__name__}: {e!r}; trying again", file=sys.stderr)
            time.sleep(0.5)


def upload_code():
    s3 = client("s3")
    try:
        s3.create_bucket(Bucket=CODE_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    retrying(s3.put_object, Bucket=CODE_BUCKET, Key=CODE_KEY, Body=buf.getvalue())


def deploy(args):
    with open(args.template) as f:
        body = f.read()
    template = json.loads(body)
    for logical in [k for k, r in template["Resources"].items() if r["Type"] in NOT_SENT]:
        del template["Resources"][logical]
    body = json.dumps(template)
    upload_code()
    approvers = args.approver or ["platform-admin@example.com"]
    parameters = {"Stage": args.stage}
    for i, email in enumerate(approvers[:3], start=1):
        parameters[f"ApproverEmail{i}"] = email
    cfn = client("cloudformation")
    name = f"image-request-{args.stage}"
    for attempt in range(3):
        try:
            cfn.create_stack(
                StackName=name,
                TemplateBody=body,
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                Capabilities=["CAPABILITY_IAM"],
            )
            stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
            break
        except Exception as e:  # an emulator hiccup: start the stack over
            if attempt == 2:
                raise
            print(f"{name}: {e!r}; deploying again", file=sys.stderr)
            try:
                cfn.delete_stack(StackName=name)
            except Exception:
                pass
            time.sleep(0.5)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        sys.exit(f"{name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
    created = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in retrying(cfn.describe_stack_resources, StackName=name)["StackResources"]
        if r.get("LogicalResourceId") and r.get("ResourceStatus") == "CREATE_COMPLETE"
    }
    conditions = stack_conditions(template, parameters)
    missing = [
        logical
        for logical, r in template["Resources"].items()
        if not r["Type"].startswith(SKIPPED)
        and conditions.get(r.get("Condition"), True)
        and logical not in created
    ]
    if missing:
        sys.exit(f"{name}: not created: {', '.join(sorted(missing))}")

    lam = client("lambda")
    for logical, physical in created.items():
        if template["Resources"][logical]["Type"] == "AWS::Lambda::EventSourceMapping":
            retrying(lam.update_event_source_mapping, UUID=physical, Enabled=False)

    sqs = client("sqs")
    for queue in ("ValidateQueue", "ProvisionQueue", "NotifyQueue"):
        attributes = {}
        if args.visibility is not None:
            attributes["VisibilityTimeout"] = str(args.visibility)
        if args.max_receives is not None:
            redrive = json.loads(
                retrying(sqs.get_queue_attributes, QueueUrl=created[queue], AttributeNames=["RedrivePolicy"])[
                    "Attributes"
                ]["RedrivePolicy"]
            )
            redrive["maxReceiveCount"] = args.max_receives
            attributes["RedrivePolicy"] = json.dumps(redrive)
        if attributes:
            retrying(sqs.set_queue_attributes, QueueUrl=created[queue], Attributes=attributes)

    # Each function's environment as CloudFormation resolved it.
    environments = {
        logical: retrying(lam.get_function_configuration, FunctionName=physical)["Environment"]["Variables"]
        for logical, physical in created.items()
        if template["Resources"][logical]["Type"] == "AWS::Lambda::Function"
    }
    json.dump({"stack": name, "environments": environments, "resources": created}, sys.stdout)


def stack_conditions(template, parameters):
    """The template's conditions, for the parameters given (the forms this template uses)."""
    values = {
        k: parameters.get(k, v.get("Default", "")) for k, v in template.get("Parameters", {}).items()
    }

    def ev(node):
        if isinstance(node, dict):
            (op, arg), = node.items()
            if op == "Ref":
                return values[arg]
            if op == "Fn::Equals":
                return str(ev(arg[0])) == str(ev(arg[1]))
            if op == "Fn::Not":
                return not ev(arg[0])
            if op == "Condition":
                return ev(template["Conditions"][arg])
            raise ValueError(f"condition form {op} not handled")
        return node

    return {name: ev(body) for name, body in template.get("Conditions", {}).items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("deploy")
    d.add_argument("stage")
    d.add_argument("template")
    d.add_argument("--approver", action="append")
    d.add_argument("--visibility", type=int)
    d.add_argument("--max-receives", type=int)
    args = parser.parse_args()
    deploy(args)


if __name__ == "__main__":
    main()
