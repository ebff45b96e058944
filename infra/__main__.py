"""The Pulumi program: load and check the stack config, build the platform, export outputs."""

import pulumi

from infra.config import ConfigError, load_config, read_pulumi_config
from infra.platform import build

values, secret_keys = read_pulumi_config()
try:
    stack_config = load_config(values, stack=pulumi.get_stack(), secret_keys=secret_keys)
except ConfigError as error:
    # RunError prints the message without a traceback; no resource has been registered yet.
    raise pulumi.RunError(f"invalid stack configuration:\n{error}") from None

for key, value in build(stack_config).items():
    pulumi.export(key, value)
