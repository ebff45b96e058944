"""The serving program: the model servers, their autoscaling and the Inference Gateway, on the platform stack of the
same environment, read through a StackReference (infra/serving/stack.py)."""

import pulumi

from infra.config import program_config
from infra.serving.stack import build

for key, value in build(program_config()).items():
    pulumi.export(key, value)
