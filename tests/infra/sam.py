"""What `sam deploy` would hand CloudFormation, and whether CloudFormation could order it.

    python tests/infra/sam.py translate infra/template.yaml OUT.json
        Runs SAM's own translator (aws-sam-translator, the version pinned in
        tests/requirements.txt) on the template, with each function's CodeUri pointed at
        s3://image-request-code/code.zip (the deploy rehearsal uploads a zip there), writes
        the plain CloudFormation to OUT.json, then checks it as below.
    python tests/infra/sam.py check TEMPLATE.json
        Checks a plain CloudFormation template (JSON): every `Ref`, `Fn::GetAtt`, `Fn::Sub`
        variable and `DependsOn` names a resource, parameter or pseudo parameter that exists,
        every condition used is defined, and the references between resources have no
        cycle (CloudFormation refuses a stack with one, whatever a linter says).

Exit status 1 with one line per finding when the template fails; 0 otherwise.
"""

import json
import os
import re
import sys

CODE_BUCKET = "image-request-code"
CODE_KEY = "code.zip"
SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def translate(source):
    # The translator reads the region for its pseudo parameters; nothing here calls AWS.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    with open(source) as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = f"s3://{CODE_BUCKET}/{CODE_KEY}"

    class NoManagedPolicies:
        """The template names no managed policies; asking IAM for them would be a bug."""

        def load(self):
            raise AssertionError("the template asked for a managed policy by name")

    return transform(template, {}, NoManagedPolicies())


def references(node, out):
    """Every (kind, name) a template fragment refers to."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                out.append(("Ref", value))
            elif key == "Fn::GetAtt":
                name = value[0] if isinstance(value, list) else str(value).split(".", 1)[0]
                out.append(("Fn::GetAtt", name))
            elif key == "Fn::Sub":
                text, local = (value, {}) if isinstance(value, str) else (value[0], value[1])
                for var in SUB_VAR.findall(text):
                    name = var.split(".", 1)[0]
                    if name not in local:
                        out.append(("Fn::Sub", name))
                references(local, out)
            elif key == "Fn::If" and isinstance(value, list) and value:
                out.append(("Condition", value[0]))
                references(value[1:], out)
            elif key == "Condition" and isinstance(value, str):
                out.append(("Condition", value))
            else:
                references(value, out)
    elif isinstance(node, list):
        for item in node:
            references(item, out)
    return out


def find_cycle(edges):
    """A list of names forming a cycle, or None."""
    state = {}

    def visit(name, path):
        state[name] = "open"
        path.append(name)
        for nxt in sorted(edges.get(name, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path)
                if found:
                    return found
        path.pop()
        state[name] = "done"
        return None

    for name in sorted(edges):
        if name not in state:
            found = visit(name, [])
            if found:
                return found
    return None


def check(template):
    resources = template.get("Resources", {})
    parameters = set(template.get("Parameters", {}))
    conditions = set(template.get("Conditions", {}))
    findings = []
    edges = {}

    def resolve(where, kind, name):
        if kind == "Condition":
            if name not in conditions:
                findings.append(f"{where}: condition {name} is not defined")
            return None
        if name.startswith("AWS::"):
            return None
        if name in resources:
            return name
        if kind != "Fn::GetAtt" and name in parameters:
            return None
        findings.append(f"{where}: {kind} {name} names nothing in the template")
        return None

    for name, resource in resources.items():
        targets = set()
        body = {k: v for k, v in resource.items() if k != "DependsOn"}
        for kind, ref in references(body, []):
            target = resolve(name, kind, ref)
            if target:
                targets.add(target)
        depends = resource.get("DependsOn", [])
        for ref in [depends] if isinstance(depends, str) else depends:
            target = resolve(name, "DependsOn", ref)
            if target:
                targets.add(target)
        edges[name] = targets
    for section in ("Outputs", "Conditions"):
        for name, body in template.get(section, {}).items():
            for kind, ref in references(body, []):
                resolve(f"{section}.{name}", kind, ref)
    cycle = find_cycle(edges)
    if cycle:
        findings.append("circular dependency: " + " -> ".join(cycle))
    return findings


def main(argv):
    if len(argv) == 4 and argv[1] == "translate":
        template = translate(argv[2])
        os.makedirs(os.path.dirname(os.path.abspath(argv[3])), exist_ok=True)
        with open(argv[3], "w") as f:
            json.dump(template, f, indent=1, sort_keys=True)
    elif len(argv) == 3 and argv[1] == "check":
        with open(argv[2]) as f:
            template = json.load(f)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    findings = check(template)
    for line in findings:
        print(line)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
