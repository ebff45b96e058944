"""The serving program's composition (programs/serving runs it): the stack's providers on the platform, the servers, the gateway."""
